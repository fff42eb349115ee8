//! EC2 instance metadata: a small IMDSv2 client and the facts it reads.
//!
//! This module decides whether to ask and asks: [`on_ec2`] reads DMI files
//! only, and [`gather`] talks to the metadata service only when the
//! [`Cloud`] setting says EC2, or says `auto` and DMI names EC2. Probing the
//! metadata address to find out would send traffic where it must not go on
//! every other node (decisions.md, "EC2 metadata only on EC2"). It does not own
//! when to ask: the daemon calls [`gather`] on a blocking thread (the reqwest
//! blocking client must not run inside an async task) and stores the result in
//! [`Facts::ec2`](super::Facts::ec2).
//!
//! Every call is IMDSv2: a token from `PUT /latest/api/token`, sent with each
//! `GET`. Calls bypass any HTTP proxy (the metadata address is link-local:
//! a proxy cannot reach this instance's service, and would see the token),
//! time out after 1 s and are retried twice, so an unreachable service
//! costs a few seconds.

use std::io::Read;
use std::net::Ipv4Addr;
use std::path::Path;
use std::thread;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde::{Deserialize, Serialize};
use tracing::debug;

use super::source::SystemRoot;

/// The link-local address of the instance metadata service.
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";

const TOKEN_PATH: &str = "/latest/api/token";
const META_DATA: &str = "/latest/meta-data";
const TOKEN_TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";
/// Six hours, the most IMDS grants; one token serves a whole read.
const TOKEN_TTL_SECONDS: &str = "21600";
const TIMEOUT: Duration = Duration::from_secs(1);
const ATTEMPTS: u32 = 3;
const BACKOFF: Duration = Duration::from_millis(100);
/// Metadata values are short; a larger body is not the metadata service.
const MAX_VALUE_BYTES: u64 = 64 * 1024;

/// Whether the agent reads EC2 instance metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    /// Read metadata only when DMI says the machine is an EC2 instance.
    #[default]
    Auto,
    /// Always read metadata; failing to is an error.
    Ec2,
    /// Never read metadata.
    None,
}

/// How the agent reads EC2 metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Ec2Settings {
    pub cloud: Cloud,
    /// Base URL of the metadata service, [`DEFAULT_ENDPOINT`] when `None`;
    /// another value is for tests and unusual setups.
    pub endpoint: Option<String>,
}

/// What the instance metadata says about this instance; templates see it as
/// `node.ec2.*`. A value the service does not have (404) is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Ec2Facts {
    /// `i-0123456789abcdef0`.
    pub instance_id: String,
    /// `t3.micro`.
    pub instance_type: String,
    /// `eu-west-1a`.
    pub availability_zone: String,
    /// `eu-west-1`.
    pub region: String,
    /// The image the instance was launched from, `ami-0abcdef1234567890`.
    pub ami_id: String,
    /// Primary private IPv4 address; `None` on IPv6-only instances.
    pub local_ipv4: Option<Ipv4Addr>,
    /// Private DNS name, `ip-10-0-1-17.eu-west-1.compute.internal`.
    pub local_hostname: String,
}

/// Whether DMI files under `root` say this machine is an EC2 instance.
/// Reads files only, never the network.
pub fn on_ec2(root: &Path) -> bool {
    let root = SystemRoot::new(root);
    let vendor_is_amazon = |path: &str| {
        root.read_value(path)
            .is_some_and(|vendor| vendor == "Amazon EC2")
    };
    // Xen-era instances have a Xen vendor but an instance UUID starting `ec2`.
    let uuid_is_ec2 = |path: &str| {
        root.read_value(path).is_some_and(|uuid| {
            uuid.get(..3)
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case("ec2"))
        })
    };
    vendor_is_amazon("/sys/class/dmi/id/sys_vendor")
        || vendor_is_amazon("/sys/class/dmi/id/board_vendor")
        || uuid_is_ec2("/sys/class/dmi/id/product_uuid")
        || uuid_is_ec2("/sys/hypervisor/uuid")
}

/// Reads the instance metadata if `settings` and DMI under `root` say to.
///
/// `Ok(None)` means not asked: `Cloud::None`, or `Cloud::Auto` off EC2; no
/// packet was sent. An error names the endpoint, the path and the cause.
/// Blocking: call it from a blocking thread, never inside an async task.
pub fn gather(settings: &Ec2Settings, root: &Path) -> Result<Option<Ec2Facts>, String> {
    match settings.cloud {
        Cloud::None => return Ok(None),
        Cloud::Auto if !on_ec2(root) => {
            debug!("DMI does not name EC2; instance metadata not read");
            return Ok(None);
        }
        Cloud::Auto | Cloud::Ec2 => {}
    }
    let endpoint = settings.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT);
    Imds::connect(endpoint)?.read_facts().map(Some)
}

/// One conversation with the metadata service, holding its token.
struct Imds {
    http: Client,
    endpoint: String,
    token: String,
}

impl Imds {
    fn connect(endpoint: &str) -> Result<Imds, String> {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        match reqwest::Url::parse(&endpoint) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            Ok(_) => return Err(format!("EC2 metadata endpoint {endpoint}: not an http URL")),
            Err(e) => return Err(format!("EC2 metadata endpoint {endpoint}: {e}")),
        }
        let http = Client::builder()
            // HTTP_PROXY and friends must never route metadata calls.
            .no_proxy()
            // The service never redirects; following one could hand the
            // token to another host.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(TIMEOUT)
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| format!("EC2 metadata at {endpoint}: HTTP client: {e}"))?;
        let mut imds = Imds {
            http,
            endpoint,
            token: String::new(),
        };
        imds.token = imds.fetch_token()?;
        Ok(imds)
    }

    fn read_facts(&mut self) -> Result<Ec2Facts, String> {
        let instance_id = self.value("instance-id")?.ok_or_else(|| {
            self.error(&format!("{META_DATA}/instance-id"), "not found (HTTP 404)")
        })?;
        let local_ipv4 = match self.value("local-ipv4")? {
            None => None,
            Some(text) => Some(text.parse().map_err(|_| {
                let path = format!("{META_DATA}/local-ipv4");
                self.error(&path, format!("not an IPv4 address: {text:?}"))
            })?),
        };
        Ok(Ec2Facts {
            instance_id,
            instance_type: self.value("instance-type")?.unwrap_or_default(),
            availability_zone: self
                .value("placement/availability-zone")?
                .unwrap_or_default(),
            region: self.value("placement/region")?.unwrap_or_default(),
            ami_id: self.value("ami-id")?.unwrap_or_default(),
            local_ipv4,
            local_hostname: self.value("local-hostname")?.unwrap_or_default(),
        })
    }

    fn fetch_token(&self) -> Result<String, String> {
        let url = format!("{}{TOKEN_PATH}", self.endpoint);
        let response = send(|| {
            self.http
                .put(&url)
                .header(TOKEN_TTL_HEADER, TOKEN_TTL_SECONDS)
        })
        .map_err(|e| {
            let mut reason = describe(&e);
            if e.is_timeout() {
                // decisions.md, "EC2 metadata only on EC2": the reply is
                // dropped, not refused.
                reason.push_str("; in a container, an instance hop limit of 1 drops the reply");
            }
            self.error(TOKEN_PATH, reason)
        })?;
        if !response.status().is_success() {
            let status = response.status();
            return Err(self.error(TOKEN_PATH, format!("token refused: HTTP {status}")));
        }
        let token = self.body(TOKEN_PATH, response)?.trim().to_string();
        if token.is_empty() {
            return Err(self.error(TOKEN_PATH, "empty token"));
        }
        Ok(token)
    }

    /// One metadata value under `/latest/meta-data/`; `None` on 404.
    fn value(&mut self, name: &str) -> Result<Option<String>, String> {
        let path = format!("{META_DATA}/{name}");
        let mut response = self.get(&path)?;
        if response.status() == StatusCode::UNAUTHORIZED {
            // The token expired or the service restarted: one fresh token.
            debug!(path, "metadata token rejected; fetching a new one");
            self.token = self.fetch_token()?;
            response = self.get(&path)?;
        }
        match response.status() {
            status if status.is_success() => self.body(&path, response).map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::UNAUTHORIZED => Err(self.error(&path, "token rejected twice (HTTP 401)")),
            status => Err(self.error(&path, format!("HTTP {status}"))),
        }
    }

    fn get(&self, path: &str) -> Result<Response, String> {
        let url = format!("{}{path}", self.endpoint);
        send(|| self.http.get(&url).header(TOKEN_HEADER, &self.token))
            .map_err(|e| self.error(path, describe(&e)))
    }

    fn body(&self, path: &str, response: Response) -> Result<String, String> {
        let mut text = String::new();
        response
            .take(MAX_VALUE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| self.error(path, format!("reading the reply: {e}")))?;
        if text.len() as u64 > MAX_VALUE_BYTES {
            return Err(self.error(path, "reply larger than 64 KiB"));
        }
        Ok(text)
    }

    fn error(&self, path: &str, reason: impl std::fmt::Display) -> String {
        format!("EC2 metadata at {}: {path}: {reason}", self.endpoint)
    }
}

/// Sends, retrying transport errors and 5xx (IMDS answers 503 when it
/// throttles) with a short, growing pause.
fn send(request: impl Fn() -> RequestBuilder) -> Result<Response, reqwest::Error> {
    let mut attempt = 1;
    loop {
        let outcome = request().send();
        let retry = match &outcome {
            Ok(response) => response.status().is_server_error(),
            Err(_) => true,
        };
        if !retry || attempt == ATTEMPTS {
            return outcome;
        }
        thread::sleep(BACKOFF * attempt);
        attempt += 1;
    }
}

/// A transport failure in words, without reqwest's repetition of the URL.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return format!(
            "timed out ({ATTEMPTS} attempts, {} s each)",
            TIMEOUT.as_secs()
        );
    }
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let what = if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    format!("{what}: {cause} ({ATTEMPTS} attempts)")
}

#[cfg(test)]
mod tests {
    use super::super::source::fake_root;
    use super::*;

    #[test]
    fn amazon_ec2_vendor_means_ec2() {
        for file in [
            "sys/class/dmi/id/sys_vendor",
            "sys/class/dmi/id/board_vendor",
        ] {
            let (dir, _) = fake_root(&[(file, "Amazon EC2\n")]);
            assert!(on_ec2(dir.path()), "{file}");
        }
    }

    #[test]
    fn xen_era_uuid_starting_ec2_means_ec2() {
        for file in ["sys/class/dmi/id/product_uuid", "sys/hypervisor/uuid"] {
            for uuid in [
                "ec2e1916-9099-7caf-fd21-012345abcdef\n",
                "EC2E1916-9099-7CAF-FD21-012345ABCDEF\n",
            ] {
                let (dir, _) = fake_root(&[(file, uuid)]);
                assert!(on_ec2(dir.path()), "{file}: {uuid}");
            }
        }
    }

    #[test]
    fn other_vendors_and_missing_dmi_are_not_ec2() {
        let (dir, _) = fake_root(&[
            ("sys/class/dmi/id/sys_vendor", "QEMU\n"),
            ("sys/class/dmi/id/board_vendor", "Amazon\n"),
            (
                "sys/class/dmi/id/product_uuid",
                "4c4c4544-0042-3510-8052-b4c04f4e3232\n",
            ),
        ]);
        assert!(!on_ec2(dir.path()));
        let (empty, _) = fake_root(&[]);
        assert!(!on_ec2(empty.path()));
    }

    #[test]
    fn cloud_names_are_lowercase() {
        assert_eq!(serde_json::to_value(Cloud::Ec2).unwrap(), "ec2");
        let none: Cloud = serde_json::from_str("\"none\"").unwrap();
        assert_eq!(none, Cloud::None);
        assert_eq!(Cloud::default(), Cloud::Auto);
    }

    #[test]
    fn bad_endpoint_is_named_in_the_error() {
        let settings = Ec2Settings {
            cloud: Cloud::Ec2,
            endpoint: Some("ftp://example".into()),
        };
        let error = gather(&settings, Path::new("/nonexistent")).unwrap_err();
        assert_eq!(
            error,
            "EC2 metadata endpoint ftp://example: not an http URL"
        );
    }
}
