//! `remote_file` provider: download only when the file on disk does not have
//! the wanted sha256, and refuse a download whose digest differs.

use std::io::Read;
use std::time::Duration;

use cm_model::manifest::sha256_hex;
use cm_model::resources::remote_file::RemoteFileSpec;
use cm_model::resources::{FieldError, Spec};

use super::managed_file::ManagedFile;
use super::{Cx, Outcome, Provider, ProviderType, spec_of};
use crate::engine::CompiledResource;
use crate::safe_path::Existing;

pub const PROVIDER: ProviderType = ProviderType {
    name: RemoteFileSpec::TYPE,
    build,
};

/// Largest download accepted; a remote file is config or a small artifact.
const MAX_BYTES: u64 = 1 << 30;

struct RemoteFile {
    file: ManagedFile,
    spec: RemoteFileSpec,
}

fn build(r: &CompiledResource) -> Result<Box<dyn Provider>, FieldError> {
    let spec: RemoteFileSpec = spec_of(r)?;
    Ok(Box::new(RemoteFile {
        file: ManagedFile {
            path: spec.path.clone().into(),
            ownership: spec.ownership()?,
            backup: spec.backup,
            diff: None,
        },
        spec,
    }))
}

impl RemoteFile {
    fn download(&self) -> Result<Vec<u8>, String> {
        let url = &self.spec.url;
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(self.spec.timeout))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        let resp = client
            .get(url)
            .send()
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", resp.status()));
        }
        // Refused before a byte of the body is read, rather than after a gigabyte.
        if let Some(length) = resp.content_length()
            && length > MAX_BYTES
        {
            return Err(format!(
                "GET {url}: {length} bytes, over the {} MiB limit",
                MAX_BYTES >> 20
            ));
        }
        let mut body = Vec::new();
        resp.take(MAX_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|e| format!("GET {url}: {e}"))?;
        if body.len() as u64 > MAX_BYTES {
            return Err(format!("GET {url}: larger than {} MiB", MAX_BYTES >> 20));
        }
        let got = sha256_hex(&body);
        if !got.eq_ignore_ascii_case(&self.spec.sha256) {
            return Err(format!(
                "GET {url}: sha256 is {got}, expected {}; not written",
                self.spec.sha256
            ));
        }
        Ok(body)
    }

    fn create(&self, if_missing: bool, cx: &Cx) -> Result<Outcome, String> {
        let current = self.file.look()?;
        let up_to_date = match &current.existing {
            Existing::File { content, .. } => {
                if_missing || sha256_hex(content).eq_ignore_ascii_case(&self.spec.sha256)
            }
            Existing::Missing | Existing::Symlink { .. } => false,
        };
        if up_to_date {
            // Content is right: only owner and mode may differ.
            return Ok(self.file.create_in(current, None, true, cx)?);
        }
        if cx.why_run {
            let mut out = self.file.create_in(current, None, true, cx)?;
            out.changes.insert(0, format!("download {}", self.spec.url));
            return Ok(out);
        }
        let body = self.download()?;
        let mut out = self.file.create(Some(&body), false, cx)?;
        out.diff = Some(format!(
            "downloaded {} ({} bytes, sha256 {})",
            self.spec.url,
            body.len(),
            self.spec.sha256
        ));
        Ok(out)
    }
}

impl Provider for RemoteFile {
    fn converge(&mut self, action: &str, cx: &mut Cx) -> Result<Outcome, String> {
        match action {
            "create" => self.create(false, cx),
            "create_if_missing" => self.create(true, cx),
            "delete" => Ok(self.file.delete(cx)?),
            _ => Ok(Outcome::unchanged()),
        }
    }
}
