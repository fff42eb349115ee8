//! EC2 metadata read through a loopback IMDSv2 stand-in: the real reqwest
//! client, real sockets, and a service that enforces the token flow.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use cm_agent::facts::{Cloud, Ec2Facts, Ec2Settings, ec2};

const TOKEN_PATH: &str = "/latest/api/token";
const META_DATA: &[(&str, &str)] = &[
    ("instance-id", "i-0123456789abcdef0"),
    ("instance-type", "t3.micro"),
    ("placement/availability-zone", "eu-west-1a"),
    ("placement/region", "eu-west-1"),
    ("ami-id", "ami-0abcdef1234567890"),
    ("local-ipv4", "10.0.1.17"),
    ("local-hostname", "ip-10-0-1-17.eu-west-1.compute.internal"),
];
/// One token PUT plus one GET per fact: the stand-in closes every connection.
const CONNECTIONS_PER_READ: usize = 1 + META_DATA.len();

fn expected_facts() -> Ec2Facts {
    Ec2Facts {
        instance_id: "i-0123456789abcdef0".into(),
        instance_type: "t3.micro".into(),
        availability_zone: "eu-west-1a".into(),
        region: "eu-west-1".into(),
        ami_id: "ami-0abcdef1234567890".into(),
        local_ipv4: Some(Ipv4Addr::new(10, 0, 1, 17)),
        local_hostname: "ip-10-0-1-17.eu-west-1.compute.internal".into(),
    }
}

/// How the stand-in misbehaves, if at all.
#[derive(Clone, Copy, Default)]
struct Quirks {
    /// Each token is rejected after this many GETs, as if it expired.
    token_uses: Option<usize>,
    /// The first requests are answered 503, as when IMDS throttles.
    throttle_first: usize,
}

#[derive(Default)]
struct Counters {
    tokens_issued: usize,
    rejected_gets: usize,
    requests: usize,
    token: Option<(String, Option<usize>)>,
}

/// A minimal IMDSv2 on 127.0.0.1: PUT a token with a TTL header (else 400),
/// GET metadata with that token (else 401). One request per connection.
struct StandIn {
    endpoint: String,
    connections: Arc<AtomicUsize>,
    counters: Arc<Mutex<Counters>>,
}

impl StandIn {
    fn start(quirks: Quirks) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counters = Arc::new(Mutex::new(Counters::default()));
        let (seen, state) = (connections.clone(), counters.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                seen.fetch_add(1, Ordering::SeqCst);
                if let Ok(stream) = stream {
                    serve(stream, quirks, &mut state.lock().unwrap());
                }
            }
        });
        StandIn {
            endpoint,
            connections,
            counters,
        }
    }

    fn settings(&self, cloud: Cloud) -> Ec2Settings {
        Ec2Settings {
            cloud,
            endpoint: Some(self.endpoint.clone()),
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn serve(mut stream: TcpStream, quirks: Quirks, state: &mut Counters) {
    let Some((method, path, headers)) = read_request(&stream) else {
        return;
    };
    state.requests += 1;
    let (status, body) = if state.requests <= quirks.throttle_first {
        (503, String::new())
    } else if method == "PUT" && path == TOKEN_PATH {
        match headers.get("x-aws-ec2-metadata-token-ttl-seconds") {
            Some(ttl) if ttl.parse::<u32>().is_ok_and(|t| (1..=21600).contains(&t)) => {
                state.tokens_issued += 1;
                let token = format!("token-{}", state.tokens_issued);
                state.token = Some((token.clone(), quirks.token_uses));
                (200, token)
            }
            _ => (400, String::new()),
        }
    } else if method == "GET" {
        let sent = headers.get("x-aws-ec2-metadata-token");
        match state.token.as_mut() {
            Some((token, uses)) if sent == Some(&*token) && *uses != Some(0) => {
                if let Some(left) = uses {
                    *left -= 1;
                }
                let name = path.strip_prefix("/latest/meta-data/").unwrap_or("");
                match META_DATA.iter().find(|(key, _)| *key == name) {
                    Some((_, value)) => (200, value.to_string()),
                    None => (404, String::new()),
                }
            }
            _ => {
                state.rejected_gets += 1;
                (401, String::new())
            }
        }
    } else {
        (405, String::new())
    };
    let reply = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes());
    let _ = stream.shutdown(Shutdown::Write);
}

/// Method, path and lowercase headers of one request; its body is discarded.
fn read_request(stream: &TcpStream) -> Option<(String, String, HashMap<String, String>)> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let (method, path) = (words.next()?.to_string(), words.next()?.to_string());
    let mut headers = HashMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let Some((name, value)) = line.trim_end().split_once(':') else {
            break;
        };
        headers.insert(name.to_ascii_lowercase(), value.trim().to_string());
    }
    let length = headers.get("content-length").and_then(|l| l.parse().ok());
    reader
        .take(length.unwrap_or(0))
        .read_to_end(&mut Vec::new())
        .ok()?;
    Some((method, path, headers))
}

/// A root whose DMI names `vendor` as the system vendor.
fn dmi_root(vendor: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let dmi = dir.path().join("sys/class/dmi/id");
    std::fs::create_dir_all(&dmi).unwrap();
    std::fs::write(dmi.join("sys_vendor"), format!("{vendor}\n")).unwrap();
    dir
}

#[test]
fn cloud_ec2_reads_every_fact_through_imdsv2() {
    let imds = StandIn::start(Quirks::default());
    let facts = ec2::gather(&imds.settings(Cloud::Ec2), Path::new("/nonexistent"));
    assert_eq!(facts, Ok(Some(expected_facts())));
    assert_eq!(imds.counters.lock().unwrap().tokens_issued, 1);
    assert_eq!(imds.connections(), CONNECTIONS_PER_READ);
}

#[test]
fn stand_in_rejects_get_without_token_and_put_without_ttl() {
    let imds = StandIn::start(Quirks::default());
    let address = imds.endpoint.trim_start_matches("http://");
    let ask = |request: &str| {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        reply
    };
    let get = ask("GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: imds\r\n\r\n");
    assert!(get.starts_with("HTTP/1.1 401"), "{get}");
    let put = ask("PUT /latest/api/token HTTP/1.1\r\nHost: imds\r\nContent-Length: 0\r\n\r\n");
    assert!(put.starts_with("HTTP/1.1 400"), "{put}");
}

#[test]
fn expired_token_is_refreshed_and_the_read_recovers() {
    let imds = StandIn::start(Quirks {
        token_uses: Some(2),
        ..Quirks::default()
    });
    let facts = ec2::gather(&imds.settings(Cloud::Ec2), Path::new("/nonexistent"));
    assert_eq!(facts, Ok(Some(expected_facts())));
    let counters = imds.counters.lock().unwrap();
    assert_eq!(counters.rejected_gets, 3, "one 401 per expired token");
    assert_eq!(counters.tokens_issued, 4);
}

#[test]
fn token_rejected_after_a_refresh_is_an_error() {
    let imds = StandIn::start(Quirks {
        token_uses: Some(0),
        ..Quirks::default()
    });
    let error = ec2::gather(&imds.settings(Cloud::Ec2), Path::new("/nonexistent")).unwrap_err();
    let expected = format!(
        "EC2 metadata at {}: /latest/meta-data/instance-id: token rejected twice (HTTP 401)",
        imds.endpoint
    );
    assert_eq!(error, expected);
    assert_eq!(imds.counters.lock().unwrap().tokens_issued, 2);
}

#[test]
fn throttled_replies_are_retried() {
    let imds = StandIn::start(Quirks {
        throttle_first: 2,
        ..Quirks::default()
    });
    let facts = ec2::gather(&imds.settings(Cloud::Ec2), Path::new("/nonexistent"));
    assert_eq!(facts, Ok(Some(expected_facts())));
    assert_eq!(imds.connections(), CONNECTIONS_PER_READ + 2);
}

#[test]
fn auto_off_ec2_makes_no_connection() {
    let imds = StandIn::start(Quirks::default());
    let root = dmi_root("QEMU");
    let facts = ec2::gather(&imds.settings(Cloud::Auto), root.path());
    assert_eq!(facts, Ok(None));
    assert_eq!(imds.connections(), 0);
}

#[test]
fn auto_with_amazon_dmi_reads_facts() {
    let imds = StandIn::start(Quirks::default());
    let root = dmi_root("Amazon EC2");
    let facts = ec2::gather(&imds.settings(Cloud::Auto), root.path());
    assert_eq!(facts, Ok(Some(expected_facts())));
}

#[test]
fn cloud_none_makes_no_connection_even_on_ec2() {
    let imds = StandIn::start(Quirks::default());
    let root = dmi_root("Amazon EC2");
    let facts = ec2::gather(&imds.settings(Cloud::None), root.path());
    assert_eq!(facts, Ok(None));
    assert_eq!(imds.connections(), 0);
}

#[test]
fn silent_endpoint_fails_after_three_timed_out_attempts_with_a_clear_error() {
    // Never accepted: the kernel completes each handshake into the backlog,
    // and nothing ever answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let settings = Ec2Settings {
        cloud: Cloud::Ec2,
        endpoint: Some(endpoint.clone()),
    };
    let error = ec2::gather(&settings, Path::new("/nonexistent")).unwrap_err();
    let prefix =
        format!("EC2 metadata at {endpoint}: /latest/api/token: timed out (3 attempts, 1 s each)");
    assert!(error.starts_with(&prefix), "{error}");
    // Bounded retries, not a hang: every connection it made waits in the backlog.
    listener.set_nonblocking(true).unwrap();
    let attempts = listener.incoming().map_while(Result::ok).count();
    assert_eq!(attempts, 3);
}

const PROXY_CHILD: &str = "proxy_variables_child";

/// Runs [`proxy_variables_child`] in a fresh process whose environment
/// routes every proxy variable to a counting listener: no `set_var`, which
/// is unsafe while other test threads run.
#[test]
fn proxy_variables_never_route_metadata_calls() {
    let imds = StandIn::start(Quirks::default());
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let proxied = Arc::new(AtomicUsize::new(0));
    let count = proxied.clone();
    thread::spawn(move || {
        for _ in proxy.incoming() {
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    let mut child = Command::new(std::env::current_exe().unwrap());
    child.args([PROXY_CHILD, "--exact", "--ignored", "--nocapture"]);
    for name in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
        child.env(name, &proxy_url);
    }
    for name in ["NO_PROXY", "no_proxy"] {
        child.env_remove(name);
    }
    let output = child
        .env("CM_TEST_IMDS_ENDPOINT", &imds.endpoint)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("1 passed"),
        "{output:?}"
    );
    assert_eq!(proxied.load(Ordering::SeqCst), 0);
    assert_eq!(imds.connections(), CONNECTIONS_PER_READ);
}

#[test]
#[ignore = "run by proxy_variables_never_route_metadata_calls with proxy variables set"]
fn proxy_variables_child() {
    let endpoint = std::env::var("CM_TEST_IMDS_ENDPOINT").expect("started by the parent test");
    let settings = Ec2Settings {
        cloud: Cloud::Ec2,
        endpoint: Some(endpoint),
    };
    let facts = ec2::gather(&settings, Path::new("/nonexistent"));
    assert_eq!(facts, Ok(Some(expected_facts())));
}
