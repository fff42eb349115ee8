//! The CA: what a signed CSR may and may not carry, identities read back
//! from certificates, the data-dir bootstrap, and real TLS handshakes
//! against a tonic server using the configs this module builds.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::task::{Context, Poll};
use std::time::Duration;

use cm_server::pki::{
    self, Ca, Caller, Credential, Identity, Pki, PkiError, client_tls_config, identity_of,
    new_key_and_csr, server_tls_config,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use tonic::body::Body;
use tonic::codegen::{Service, http};
use tonic::transport::server::{TcpConnectInfo, TcpIncoming, TlsConnectInfo};
use tonic::transport::{Endpoint, Server};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

const DAY: u64 = 24 * 3600;
const NODE_VALIDITY: Duration = Duration::from_secs(90 * DAY);

fn der(cert_pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("issued certificates are PEM")
}

fn sans<'a>(cert: &X509Certificate<'a>) -> Vec<GeneralName<'a>> {
    let ext = cert.subject_alternative_name().unwrap();
    ext.expect("issued certificates have a subjectAltName")
        .value
        .general_names
        .clone()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A CSR that asks for everything a node must not get.
fn greedy_csr(key: &KeyPair) -> String {
    let mut params = CertificateParams::new(vec!["evil.example.com".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::URI("cm:admin:root".try_into().unwrap()));
    params.distinguished_name.push(DnType::CommonName, "root");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::CodeSigning,
    ];
    params.serialize_request(key).unwrap().pem().unwrap()
}

#[test]
fn pki_types_can_be_shared_across_tasks() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<Ca>();
    shared::<Pki>();
    shared::<cm_server::secretbox::SecretKey>();
    shared::<cm_server::blobs::Blobs>();
}

#[test]
fn signed_csr_carries_the_node_identity_and_nothing_the_csr_asked_for() {
    let ca = Ca::generate("test CA").unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let issued = ca
        .sign_node_csr(&greedy_csr(&key), "web-1", NODE_VALIDITY)
        .unwrap();

    let cert_der = der(&issued.cert_pem);
    let (_, cert) = X509Certificate::from_der(&cert_der).unwrap();
    assert_eq!(sans(&cert), vec![GeneralName::URI("cm:node:web-1")]);
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|cn| cn.as_str().unwrap())
        .collect();
    assert_eq!(cn, ["web-1"]);
    assert!(!cert.is_ca());
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth && !eku.code_signing && !eku.any);
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign() && !ku.crl_sign());
    // The node's key, signed by the CA.
    assert_eq!(
        cert.public_key().subject_public_key.data.as_ref(),
        key.public_key_raw()
    );
    let (_, ca_cert) = X509Certificate::from_der(ca.cert_der()).unwrap();
    cert.verify_signature(Some(ca_cert.public_key())).unwrap();
    // Validity from the server: 90 days, starting in the past (back-dated).
    let not_before = cert.validity().not_before.timestamp();
    assert!(not_before < now() && not_before > now() - 3 * 3600);
    assert!((issued.not_after - (now() + 90 * DAY as i64)).abs() < 60);

    let caller = identity_of(&cert_der).unwrap();
    assert_eq!(
        caller,
        Caller {
            identity: Identity::Node("web-1".into()),
            serial: issued.serial.clone(),
            not_after: issued.not_after,
        }
    );
    assert_eq!(
        issued.serial.len(),
        32,
        "16 random bytes: {}",
        issued.serial
    );
}

#[test]
fn csr_with_a_bad_signature_is_refused() {
    let ca = Ca::generate("test CA").unwrap();
    let (_, csr_pem) = new_key_and_csr("web-1").unwrap();
    let csr_der =
        rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec();

    // A flipped bit in the signature, and a changed subject under the
    // original signature.
    let mut bad_signature = csr_der.clone();
    *bad_signature.last_mut().unwrap() ^= 0x01;
    let mut bad_subject = csr_der.clone();
    let at = bad_subject.windows(5).position(|w| w == b"web-1").unwrap();
    bad_subject[at + 4] = b'2';

    for tampered in [bad_signature, bad_subject] {
        let pem = pem_of("CERTIFICATE REQUEST", &tampered);
        let err = ca.sign_node_csr(&pem, "web-1", NODE_VALIDITY).unwrap_err();
        assert!(matches!(err, PkiError::Csr(_)), "{err}");
        assert!(err.to_string().contains("signature"), "{err}");
    }
    assert!(matches!(
        ca.sign_node_csr("not a csr", "web-1", NODE_VALIDITY),
        Err(PkiError::Csr(_))
    ));
    // The untampered CSR signs.
    ca.sign_node_csr(&csr_pem, "web-1", NODE_VALIDITY).unwrap();
}

#[test]
fn csr_with_a_key_other_than_p256_is_refused() {
    let ca = Ca::generate("test CA").unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let csr = CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let err = ca.sign_node_csr(&csr, "web-1", NODE_VALIDITY).unwrap_err();
    assert!(err.to_string().contains("P-256"), "{err}");
}

#[test]
fn node_names_are_validated_with_a_clear_error() {
    let ca = Ca::generate("test CA").unwrap();
    let (_, csr) = new_key_and_csr("probe").unwrap();
    for good in [
        "i-0abc123def4567890",
        "web-1.eu-west-1.compute.internal",
        "node_7",
        "a",
    ] {
        ca.sign_node_csr(&csr, good, NODE_VALIDITY).unwrap();
    }
    let long = "a".repeat(254);
    for bad in [
        "",
        "-web",
        ".web",
        "Web-1",
        "web/1",
        "web 1",
        "cm:admin:root",
        &long,
    ] {
        let err = ca.sign_node_csr(&csr, bad, NODE_VALIDITY).unwrap_err();
        assert!(
            matches!(err, PkiError::InvalidName { kind: "node", .. }),
            "{bad:?}: {err}"
        );
        assert!(err.to_string().contains("invalid node name"), "{err}");
    }
    assert!(ca.issue_admin("Alice", NODE_VALIDITY).is_err());
}

#[test]
fn identity_of_reads_node_and_admin_certificates() {
    let ca = Ca::generate("test CA").unwrap();
    let admin = ca
        .issue_admin("alice", Duration::from_secs(30 * DAY))
        .unwrap();
    let caller = identity_of(&der(&admin.cert.cert_pem)).unwrap();
    assert_eq!(caller.identity, Identity::Admin("alice".into()));
    assert_eq!(caller.identity.to_string(), "admin:alice");
    assert_eq!(caller.serial, admin.cert.serial);
    assert_eq!(caller.not_after, admin.cert.not_after);
    // The admin's key belongs to the admin's certificate.
    let key = KeyPair::from_pem(&admin.key_pem).unwrap();
    let admin_der = der(&admin.cert.cert_pem);
    let (_, cert) = X509Certificate::from_der(&admin_der).unwrap();
    assert_eq!(
        cert.public_key().subject_public_key.data.as_ref(),
        key.public_key_raw()
    );
    assert!(!format!("{admin:?}").contains("PRIVATE KEY"));

    let (key_pem, csr) = new_key_and_csr("i-0abc").unwrap();
    assert!(key_pem.contains("PRIVATE KEY"));
    let node = ca.sign_node_csr(&csr, "i-0abc", NODE_VALIDITY).unwrap();
    let caller = identity_of(&der(&node.cert_pem)).unwrap();
    assert_eq!(caller.identity, Identity::Node("i-0abc".into()));
    assert_eq!(caller.identity.to_string(), "node:i-0abc");

    // A certificate without a cm: identity (the server's) names nobody.
    let server = ca
        .issue_server(&names(&["localhost"]), NODE_VALIDITY)
        .unwrap();
    assert!(identity_of(&der(&server.cert.cert_pem)).is_err());
    assert!(identity_of(b"garbage").is_err());
}

#[test]
fn server_certificate_has_dns_and_ip_names_and_server_auth() {
    let ca = Ca::generate("test CA").unwrap();
    let server = ca
        .issue_server(
            &names(&["cm.example.com", "127.0.0.1", "::1"]),
            NODE_VALIDITY,
        )
        .unwrap();
    let cert_der = der(&server.cert.cert_pem);
    let (_, cert) = X509Certificate::from_der(&cert_der).unwrap();
    assert_eq!(
        sans(&cert),
        vec![
            GeneralName::DNSName("cm.example.com"),
            GeneralName::IPAddress(&[127, 0, 0, 1]),
            GeneralName::IPAddress(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        ]
    );
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    assert!(ca.issue_server(&[], NODE_VALIDITY).is_err());
    assert!(
        ca.issue_server(&names(&["bad name"]), NODE_VALIDITY)
            .is_err()
    );
}

#[test]
fn ca_round_trips_through_pem_and_fingerprint_is_sha256_of_der() {
    let ca = Ca::generate("test CA").unwrap();
    let fingerprint = ca.fingerprint();
    assert_eq!(
        fingerprint,
        hex::encode(Sha256::digest(ca.cert_der().as_ref()))
    );
    assert_eq!(fingerprint.len(), 64);
    assert!(
        fingerprint
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );

    let loaded = Ca::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
    assert_eq!(loaded.fingerprint(), fingerprint);
    assert!(!format!("{loaded:?}").contains("PRIVATE"));
    // Certificates the loaded CA issues chain to the original.
    let node = loaded.issue_admin("bob", NODE_VALIDITY).unwrap();
    let node_der = der(&node.cert.cert_pem);
    let (_, cert) = X509Certificate::from_der(&node_der).unwrap();
    let (_, ca_cert) = X509Certificate::from_der(ca.cert_der()).unwrap();
    cert.verify_signature(Some(ca_cert.public_key())).unwrap();

    let other = Ca::generate("other CA").unwrap();
    let err = Ca::from_pem(ca.cert_pem(), other.key_pem()).unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");
    // A leaf is not a CA.
    let leaf = ca.issue_admin("carol", NODE_VALIDITY).unwrap();
    assert!(Ca::from_pem(&leaf.cert.cert_pem, &leaf.key_pem).is_err());
}

#[test]
fn load_or_create_writes_private_files_once_and_keeps_the_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let tls_names = names(&["localhost", "127.0.0.1"]);

    let first = Pki::load_or_create(&dir, &tls_names).unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    assert_eq!(mode(&dir.join("server.key")), 0o600);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["ca.key", "ca.pem", "server.key", "server.pem"]);

    let second = Pki::load_or_create(&dir, &tls_names).unwrap();
    assert_eq!(second.ca().fingerprint(), first.ca().fingerprint());
    assert_eq!(
        second.server().cert,
        first.server().cert,
        "server cert re-issued needlessly"
    );

    // New names: new server cert, same CA.
    let more = names(&["localhost", "127.0.0.1", "cm.internal"]);
    let third = Pki::load_or_create(&dir, &more).unwrap();
    assert_eq!(third.ca().fingerprint(), first.ca().fingerprint());
    assert_ne!(third.server().cert.serial, first.server().cert.serial);
    let third_der = der(&third.server().cert.cert_pem);
    let (_, cert) = X509Certificate::from_der(&third_der).unwrap();
    assert!(sans(&cert).contains(&GeneralName::DNSName("cm.internal")));

    // A server cert that expires within 30 days is replaced.
    let short = third
        .ca()
        .issue_server(&more, Duration::from_secs(10 * DAY))
        .unwrap();
    std::fs::write(dir.join("server.pem"), &short.cert.cert_pem).unwrap();
    std::fs::write(dir.join("server.key"), &short.key_pem).unwrap();
    let fourth = Pki::load_or_create(&dir, &more).unwrap();
    assert_ne!(fourth.server().cert.serial, short.cert.serial);
    assert!(fourth.server().cert.not_after > now() + 300 * DAY as i64);
    assert_eq!(fourth.ca().fingerprint(), first.ca().fingerprint());
}

#[test]
fn half_a_ca_in_the_data_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    Pki::load_or_create(tmp.path(), &names(&["localhost"])).unwrap();
    std::fs::remove_file(tmp.path().join("ca.pem")).unwrap();
    let err = Pki::load_or_create(tmp.path(), &names(&["localhost"])).unwrap_err();
    assert!(
        err.to_string().contains("only one of ca.pem and ca.key"),
        "{err}"
    );
}

#[test]
fn replicas_share_a_ca_given_as_paths_or_pem() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::generate("shared CA").unwrap();
    let (cert_path, key_path) = (tmp.path().join("ca.crt"), tmp.path().join("ca.key"));
    std::fs::write(&cert_path, ca.cert_pem()).unwrap();
    std::fs::write(&key_path, ca.key_pem()).unwrap();

    let by_path =
        Ca::from_pem_or_path(cert_path.to_str().unwrap(), key_path.to_str().unwrap()).unwrap();
    let by_pem = Ca::from_pem_or_path(ca.cert_pem(), ca.key_pem()).unwrap();
    assert_eq!(by_path.fingerprint(), ca.fingerprint());
    assert_eq!(by_pem.fingerprint(), ca.fingerprint());

    let replica_dir = tmp.path().join("replica");
    let replica = Pki::from_ca(by_path, &replica_dir, &names(&["localhost"])).unwrap();
    assert_eq!(replica.ca().fingerprint(), ca.fingerprint());
    assert!(
        !replica_dir.join("ca.key").exists(),
        "the shared CA key was copied"
    );

    // Another CA over the same dir: the server cert is re-issued under it.
    let other = Ca::generate("other CA").unwrap();
    let other_fingerprint = other.fingerprint();
    let moved = Pki::from_ca(other, &replica_dir, &names(&["localhost"])).unwrap();
    assert_ne!(moved.server().cert.serial, replica.server().cert.serial);
    assert_eq!(moved.ca().fingerprint(), other_fingerprint);

    let missing = Ca::from_pem_or_path("/nonexistent/ca.pem", ca.key_pem()).unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent/ca.pem"),
        "{missing}"
    );
}

// ------------------------------------------------------------ TLS handshakes

/// Answers every call with the caller's identity in a header, as the real
/// services will read it: from the peer certificates tonic hands over.
#[derive(Clone)]
struct WhoAmI;

impl Service<http::Request<Body>> for WhoAmI {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let certs = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|info| info.peer_certs());
        let who = match certs.as_ref().and_then(|certs| certs.first()) {
            None => "anonymous".to_string(),
            Some(cert) => match identity_of(cert) {
                Ok(caller) => caller.identity.to_string(),
                Err(e) => format!("unidentified: {e}"),
            },
        };
        let response = http::Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", "0")
            .header("x-who", who)
            .body(Body::empty())
            .expect("static response parts are valid");
        ready(Ok(response))
    }
}

impl tonic::server::NamedService for WhoAmI {
    const NAME: &'static str = "test.WhoAmI";
}

async fn start_server(pki: &Pki) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = Server::builder()
        .tls_config(server_tls_config(
            pki.ca(),
            &pki.server().cert.cert_pem,
            &pki.server().key_pem,
        ))
        .unwrap()
        .add_service(WhoAmI);
    tokio::spawn(router.serve_with_incoming(TcpIncoming::from(listener)));
    port
}

/// [`who_am_i`] presenting `credential`, to the server named localhost.
async fn who_am_i_as(port: u16, ca_pem: &str, credential: &Credential) -> Result<String, String> {
    let identity = Some((
        credential.cert.cert_pem.as_str(),
        credential.key_pem.as_str(),
    ));
    who_am_i(port, ca_pem, identity, "localhost").await
}

/// Connects and calls; the answer is who the server saw, or the error.
async fn who_am_i(
    port: u16,
    ca_pem: &str,
    identity: Option<(&str, &str)>,
    server_name: &str,
) -> Result<String, String> {
    let tls = client_tls_config(ca_pem, identity, server_name);
    let mut channel = Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .map_err(|e| e.to_string())?
        .timeout(Duration::from_secs(10))
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    futures::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .map_err(|e| format!("ready: {e:?}"))?;
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("https://127.0.0.1:{port}/test.WhoAmI/Call"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    let response = channel
        .call(request)
        .await
        .map_err(|e| format!("call: {e:?}"))?;
    response
        .headers()
        .get("x-who")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| "no x-who header".to_string())
}

#[tokio::test]
async fn tls_accepts_anonymous_and_ca_issued_clients_and_refuses_foreign_ones() {
    pki::install_crypto_provider();
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(tmp.path(), &names(&["localhost", "127.0.0.1"])).unwrap();
    let port = start_server(&pki).await;
    let ca_pem = pki.ca().cert_pem();

    // Enroll's case: no client certificate at all.
    assert_eq!(
        who_am_i(port, ca_pem, None, "localhost").await.unwrap(),
        "anonymous"
    );
    // The IP SAN serves as the server name too.
    assert_eq!(
        who_am_i(port, ca_pem, None, "127.0.0.1").await.unwrap(),
        "anonymous"
    );

    // A node enrolled with this CA.
    let (key_pem, csr) = new_key_and_csr("web-1").unwrap();
    let node = pki
        .ca()
        .sign_node_csr(&csr, "web-1", NODE_VALIDITY)
        .unwrap();
    let seen = who_am_i(port, ca_pem, Some((&node.cert_pem, &key_pem)), "localhost").await;
    assert_eq!(seen.unwrap(), "node:web-1");

    // An admin of this CA.
    let admin = pki.ca().issue_admin("alice", NODE_VALIDITY).unwrap();
    let seen = who_am_i_as(port, ca_pem, &admin);
    assert_eq!(seen.await.unwrap(), "admin:alice");

    // A certificate from another CA claiming to be an admin is refused,
    // not downgraded to anonymous.
    let foreign = Ca::generate("foreign CA").unwrap();
    let forged = foreign.issue_admin("alice", NODE_VALIDITY).unwrap();
    let seen = who_am_i_as(port, ca_pem, &forged);
    let err = seen.await.unwrap_err();
    assert!(err.contains("UnknownCA"), "{err}");

    // The client refuses a server whose certificate names another host, and
    // a server it cannot chain to its CA.
    let err = who_am_i(port, ca_pem, None, "cm.example.com")
        .await
        .unwrap_err();
    assert!(err.contains("NotValidForName"), "{err}");
    assert!(
        who_am_i(port, foreign.cert_pem(), None, "localhost")
            .await
            .is_err()
    );

    // A server cert is never a client credential: it lacks clientAuth.
    let server = pki.server();
    let seen = who_am_i_as(port, ca_pem, server);
    let err = seen.await.unwrap_err();
    assert!(err.contains("UnsupportedCertificate"), "{err}");
}

fn pem_of(label: &str, der: &[u8]) -> String {
    use std::fmt::Write;
    let b64 = base64_encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        let _ = writeln!(pem, "{}", std::str::from_utf8(line).unwrap());
    }
    let _ = writeln!(pem, "-----END {label}-----");
    pem
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn every_certificate_starts_two_hours_back_for_nodes_whose_clock_is_behind() {
    pki::install_crypto_provider();
    let ca = Ca::generate("cm CA").unwrap();
    let (_, csr) = new_key_and_csr("web-1").unwrap();
    let node = ca.sign_node_csr(&csr, "web-1", NODE_VALIDITY).unwrap();
    let admin = ca.issue_admin("alice", NODE_VALIDITY).unwrap();
    let server = ca
        .issue_server(&names(&["localhost"]), NODE_VALIDITY)
        .unwrap();
    let margin = pki::CERT_BACKDATE.as_secs() as i64;
    assert!(margin >= 2 * 3600, "the margin covers real clock skew");
    for (what, pem) in [
        ("CA", ca.cert_pem().to_string()),
        ("node", node.cert_pem),
        ("admin", admin.cert.cert_pem),
        ("server", server.cert.cert_pem),
    ] {
        let der = der(&pem);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let not_before = cert.validity().not_before.timestamp();
        let back = now() - not_before;
        assert!(
            back >= margin && back < margin + 600,
            "the {what} certificate starts {back} s back, not {margin} s"
        );
    }
}
