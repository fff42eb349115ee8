//! `remote_file`: a file downloaded from a URL and checked against its sha256.

use serde::{Deserialize, Serialize};

use super::file::FileAction;

use super::{
    CookbookRefs, FieldError, Ownership, Spec, check_managed_path, check_mode, is_templated,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteFileSpec {
    pub path: String,
    /// http:// or https:// URL.
    pub url: String,
    /// Required: the download is refused unless its content has this digest.
    pub sha256: String,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<String>,
    #[serde(default = "super::file::default_backups")]
    pub backup: u32,
    /// Seconds for the whole download.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
}

fn default_timeout() -> u64 {
    300
}

impl RemoteFileSpec {
    pub fn ownership(&self) -> Result<Ownership, FieldError> {
        Ownership::from_props(&self.owner, &self.group, &self.mode)
    }
}

impl Spec for RemoteFileSpec {
    const TYPE: &'static str = "remote_file";
    type Action = FileAction;
    const DEFAULT_ACTIONS: &'static [FileAction] = &[FileAction::Create];
    const NAME_PROPERTY: &'static str = "path";

    fn validate(&self, _refs: &dyn CookbookRefs) -> Result<(), FieldError> {
        check_managed_path("path", &self.path)?;
        check_mode("mode", &self.mode)?;
        let url = &self.url;
        if !is_templated(url)
            && !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            return Err(FieldError::new(
                "url",
                format!("{url:?} is not an http(s) URL"),
            ));
        }
        let sha = &self.sha256;
        if !is_templated(sha) && (sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit())) {
            return Err(FieldError::new("sha256", "expected 64 hex digits"));
        }
        Ok(())
    }
}
