//! The distribution, from os-release(5).
//!
//! `/etc/os-release` is the one file every current Debian and Ubuntu ships;
//! `/usr/lib/os-release` is its documented fallback. Parsing follows the
//! file's shell-like syntax (quoted or bare values, backslash escapes in
//! double quotes) without running a shell.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tracing::debug;

use super::source::SystemRoot;

/// The distribution the node runs; templates see it as `node.os.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OsFacts {
    /// os-release `ID`: `debian`, `ubuntu`.
    pub id: String,
    /// os-release `NAME`: `Debian GNU/Linux`.
    pub name: String,
    /// os-release `VERSION_ID`: `12`, `22.04`; empty on testing and sid.
    pub version_id: String,
    /// os-release `VERSION_CODENAME`: `bookworm`, `jammy`.
    pub version_codename: String,
    /// The family recipes branch on: the root of `ID_LIKE`, else `ID`, so
    /// Ubuntu and its derivatives all say `debian`.
    pub family: String,
}

pub(super) fn gather(root: &SystemRoot) -> OsFacts {
    match root
        .read("/etc/os-release")
        .or_else(|| root.read("/usr/lib/os-release"))
    {
        Some(text) => os_from_release(&parse_os_release(&text)),
        None => {
            debug!("os: no os-release file");
            OsFacts::default()
        }
    }
}

fn os_from_release(fields: &HashMap<String, String>) -> OsFacts {
    let field = |key: &str| fields.get(key).cloned().unwrap_or_default();
    let id = field("ID");
    OsFacts {
        name: field("NAME"),
        version_id: field("VERSION_ID"),
        version_codename: fields
            .get("VERSION_CODENAME")
            .cloned()
            .or_else(|| codename_from_version(&field("VERSION")))
            .unwrap_or_default(),
        family: family_of(&id, &field("ID_LIKE")),
        id,
    }
}

/// `ID_LIKE` lists relatives closest first (os-release(5)), so its last
/// word is the root of the family: `ubuntu debian` for Mint is `debian`.
fn family_of(id: &str, id_like: &str) -> String {
    id_like.split_whitespace().last().unwrap_or(id).to_string()
}

/// Older Debian releases (9 and before) have no `VERSION_CODENAME`, only
/// `VERSION="9 (stretch)"`.
fn codename_from_version(version: &str) -> Option<String> {
    let (_, rest) = version.split_once('(')?;
    let (inside, _) = rest.split_once(')')?;
    let word = inside.split_whitespace().next()?;
    Some(word.to_ascii_lowercase())
}

/// Parses `KEY=value` lines; comments, blank lines and malformed lines are
/// skipped, as the format asks.
pub(super) fn parse_os_release(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_string(), unquote(value.trim())))
        .collect()
}

/// Strips one level of shell quoting. Only double quotes take backslash
/// escapes, as in the shell.
fn unquote(value: &str) -> String {
    if let Some(inner) = strip_pair(value, '"') {
        unescape_double_quoted(inner)
    } else if let Some(inner) = strip_pair(value, '\'') {
        inner.to_string()
    } else {
        value.to_string()
    }
}

fn strip_pair(value: &str, quote: char) -> Option<&str> {
    value.strip_prefix(quote)?.strip_suffix(quote)
}

fn unescape_double_quoted(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::source::fake_root;

    const DEBIAN_12: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"#;

    const UBUNTU_2204: &str = r#"# a comment
NAME='Ubuntu'
VERSION_ID="22.04"
VERSION="22.04.3 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
not a key value line
"#;

    #[test]
    fn debian_release_with_quoted_and_bare_values() {
        let os = os_from_release(&parse_os_release(DEBIAN_12));
        assert_eq!(
            os,
            OsFacts {
                id: "debian".into(),
                name: "Debian GNU/Linux".into(),
                version_id: "12".into(),
                version_codename: "bookworm".into(),
                family: "debian".into(),
            }
        );
    }

    #[test]
    fn ubuntu_belongs_to_the_debian_family() {
        let os = os_from_release(&parse_os_release(UBUNTU_2204));
        assert_eq!(os.id, "ubuntu");
        assert_eq!(os.name, "Ubuntu");
        assert_eq!(os.version_id, "22.04");
        assert_eq!(os.version_codename, "jammy");
        assert_eq!(os.family, "debian");
    }

    #[test]
    fn derivative_family_is_the_root_of_id_like() {
        assert_eq!(family_of("linuxmint", "ubuntu debian"), "debian");
        assert_eq!(family_of("debian", ""), "debian");
    }

    #[test]
    fn codename_falls_back_to_the_version_string() {
        let os = os_from_release(&parse_os_release("ID=debian\nVERSION=\"9 (stretch)\"\n"));
        assert_eq!(os.version_codename, "stretch");
    }

    #[test]
    fn double_quoted_values_take_backslash_escapes() {
        let fields = parse_os_release(r#"NAME="say \"hi\" \\ \$HOME""#);
        assert_eq!(fields["NAME"], r#"say "hi" \ $HOME"#);
        let fields = parse_os_release(r"NAME='kept \n as is'");
        assert_eq!(fields["NAME"], r"kept \n as is");
    }

    #[test]
    fn missing_release_file_gives_empty_os() {
        let (_dir, root) = fake_root(&[]);
        assert_eq!(gather(&root), OsFacts::default());
    }
}
