//! dpkg's status database read directly, as `dpkg-query -W` reads it: a run
//! that only checks packages then costs a read of one file instead of a
//! process (about a third of a no-op converge; bench/README.md).
//!
//! dpkg replaces `status` atomically (it writes `status-new` and renames
//! it) and records each change made since in a journal under `updates/`,
//! merged into `status` at its next start. A journal left behind (an
//! interrupted dpkg) means `status` alone is out of date: the caller asks
//! `dpkg-query` then, as it does for architecture-qualified names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where dpkg keeps its database: `DPKG_ADMINDIR`, as dpkg itself reads it,
/// or `/var/lib/dpkg`.
pub fn admin_dir() -> PathBuf {
    std::env::var_os("DPKG_ADMINDIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("/var/lib/dpkg"), PathBuf::from)
}

/// The installed version of each name (None: known but not installed, or
/// unknown), or None when `status` cannot answer alone: it is missing or
/// unreadable, the journal holds changes, or a name carries an architecture.
pub fn installed_versions(
    admin: &Path,
    names: &BTreeSet<&str>,
) -> Option<BTreeMap<String, Option<String>>> {
    if names.iter().any(|n| n.contains(':')) || journal_pending(admin) {
        return None;
    }
    let status = std::fs::read_to_string(admin.join("status")).ok()?;
    let mut found: BTreeMap<String, Option<String>> =
        names.iter().map(|n| (n.to_string(), None)).collect();
    for stanza in parse(&status) {
        // Several instances of one name (multi-arch): any installed one counts.
        if let Some(slot) = found.get_mut(stanza.package)
            && slot.is_none()
            && stanza.installed()
        {
            *slot = Some(stanza.version.to_string());
        }
    }
    Some(found)
}

/// Does `updates/` hold journal entries (files named by digits only)?
fn journal_pending(admin: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(admin.join("updates")) else {
        // No journal directory: nothing pending.
        return false;
    };
    entries.filter_map(Result::ok).any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
    })
}

/// The fields of one package's stanza that a check needs.
#[derive(Debug, Default, PartialEq, Eq)]
struct Stanza<'a> {
    package: &'a str,
    status: &'a str,
    version: &'a str,
}

impl Stanza<'_> {
    /// `${db:Status-Status}` is `installed`: the third word of `Status:`.
    fn installed(&self) -> bool {
        self.status.split_whitespace().nth(2) == Some("installed")
    }
}

/// Every stanza with a `Package:` field, in file order.
fn parse(text: &str) -> Vec<Stanza<'_>> {
    let mut out = Vec::new();
    let mut cur = Stanza::default();
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if !cur.package.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            cur = Stanza::default();
            continue;
        }
        if line.starts_with([' ', '\t']) {
            continue; // a continuation line of a multi-line field
        }
        let Some((field, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        // Field names are case-insensitive in deb822.
        if field.eq_ignore_ascii_case("Package") {
            cur.package = value;
        } else if field.eq_ignore_ascii_case("Status") {
            cur.status = value;
        } else if field.eq_ignore_ascii_case("Version") {
            cur.version = value;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
Package: bash
Essential: yes
Status: install ok installed
Priority: required
Version: 5.2.15-2+b7
Description: GNU Bourne Again SHell
 Bash is an sh-compatible command language interpreter.
 .
 Package: not-a-field

Package: removed-one
Status: deinstall ok config-files
Version: 1.0-1

package: lower
status: install ok installed
version: 2:3.4~rc1-1

Package: libmulti
Architecture: i386
Status: deinstall ok not-installed
Version: 1.0

Package: libmulti
Architecture: amd64
Status: install ok installed
Version: 1.1
";

    fn admin(status: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("status"), status).unwrap();
        std::fs::create_dir(d.path().join("updates")).unwrap();
        d
    }

    #[test]
    fn reads_installed_versions_as_dpkg_query_reports_them() {
        let d = admin(STATUS);
        let names = BTreeSet::from(["bash", "removed-one", "lower", "libmulti", "absent"]);
        let v = installed_versions(d.path(), &names).unwrap();
        assert_eq!(v["bash"].as_deref(), Some("5.2.15-2+b7"));
        assert_eq!(v["removed-one"], None);
        assert_eq!(v["lower"].as_deref(), Some("2:3.4~rc1-1"));
        assert_eq!(v["libmulti"].as_deref(), Some("1.1"));
        assert_eq!(v["absent"], None);
        assert_eq!(v.len(), 5);
        // A description line that looks like a field is not a package.
        assert!(!parse(STATUS).iter().any(|s| s.package == "not-a-field"));
    }

    #[test]
    fn a_pending_journal_or_an_architecture_leaves_it_to_dpkg_query() {
        let d = admin(STATUS);
        std::fs::write(d.path().join("updates/tmp.i"), "").unwrap();
        assert!(installed_versions(d.path(), &BTreeSet::from(["bash"])).is_some());
        assert!(installed_versions(d.path(), &BTreeSet::from(["bash:amd64"])).is_none());
        std::fs::write(d.path().join("updates/0001"), "Package: bash\n").unwrap();
        assert!(installed_versions(d.path(), &BTreeSet::from(["bash"])).is_none());
        let empty = tempfile::tempdir().unwrap();
        assert!(installed_versions(empty.path(), &BTreeSet::from(["bash"])).is_none());
    }
}
