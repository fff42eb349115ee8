//! One HTTP(S) download checked against its sha256, for `remote_file` and
//! `deploy`: bounded in time and size, and refused whole when its digest
//! differs, so nothing of a wrong body is ever written.

use std::io::Read;
use std::time::Duration;

use cm_model::manifest::sha256_hex;

/// Largest download accepted; a remote file is config or a small artifact.
pub const MAX_BYTES: u64 = 1 << 30;

/// Why a download was refused.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("http client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("GET {url}: {source}")]
    Get { url: String, source: reqwest::Error },
    #[error("GET {url}: HTTP {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("GET {url}: {source}")]
    Read { url: String, source: std::io::Error },
    #[error("GET {url}: larger than {} MiB", MAX_BYTES >> 20)]
    TooLarge { url: String },
    #[error("GET {url}: {length} bytes, over the {} MiB limit", MAX_BYTES >> 20)]
    DeclaredTooLarge { url: String, length: u64 },
    #[error("GET {url}: sha256 is {got}, expected {expected}; not written")]
    Digest {
        url: String,
        got: String,
        expected: String,
    },
}

/// The body at `url`, if its sha256 is `sha256` (hex, either case), within
/// `timeout` for the whole transfer and [`MAX_BYTES`].
pub fn download(url: &str, sha256: &str, timeout: Duration) -> Result<Vec<u8>, DownloadError> {
    let client = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(DownloadError::Client)?;
    let resp = client
        .get(url)
        .send()
        .map_err(|source| DownloadError::Get {
            url: url.to_string(),
            source,
        })?;
    if !resp.status().is_success() {
        return Err(DownloadError::Status {
            url: url.to_string(),
            status: resp.status(),
        });
    }
    // Refused before a byte of the body is read, rather than after a gigabyte.
    if let Some(length) = resp.content_length()
        && length > MAX_BYTES
    {
        return Err(DownloadError::DeclaredTooLarge {
            url: url.to_string(),
            length,
        });
    }
    let mut body = Vec::new();
    resp.take(MAX_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|source| DownloadError::Read {
            url: url.to_string(),
            source,
        })?;
    if body.len() as u64 > MAX_BYTES {
        return Err(DownloadError::TooLarge {
            url: url.to_string(),
        });
    }
    let got = sha256_hex(&body);
    if !got.eq_ignore_ascii_case(sha256) {
        return Err(DownloadError::Digest {
            url: url.to_string(),
            got,
            expected: sha256.to_string(),
        });
    }
    Ok(body)
}
