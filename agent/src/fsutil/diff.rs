//! What a report shows of a content change: a unified diff of text, or only
//! sizes and sha256 digests for content others may not read (a key shipped
//! in `files/` with mode 0600) or whose resource says `diff: false`. Secrets
//! and `sensitive` resources are hidden later, by the engine, whatever this says.

use std::path::Path;

use cm_model::manifest::sha256_hex;

/// How much of the content a change may show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// A unified diff of the lines.
    Lines,
    /// The same for a changed file; a new one shows its first lines, its
    /// size and digest (a first run creates hundreds: the log stays short).
    Head,
    /// Sizes and digests only.
    Digest,
}

/// Does `mode` let users other than the owner and group read the file?
pub fn others_may_read(mode: u32) -> bool {
    mode & 0o004 != 0
}

/// The change from `old` (None: no file) to `new`, as much as `shown` allows.
pub fn describe_change(path: &Path, old: Option<&[u8]>, new: &[u8], shown: Shown) -> String {
    match shown {
        Shown::Lines => diff(path, old, new),
        Shown::Head => match old {
            None => head(path, new),
            Some(_) => diff(path, old, new),
        },
        Shown::Digest => match old {
            Some(old) => format!(
                "content changed ({} -> {} bytes, sha256 {} -> {})",
                old.len(),
                new.len(),
                short_digest(old),
                short_digest(new)
            ),
            None => format!(
                "content ({} bytes, sha256 {})",
                new.len(),
                short_digest(new)
            ),
        },
    }
}

fn short_digest(bytes: &[u8]) -> String {
    let mut hex = sha256_hex(bytes);
    hex.truncate(12);
    hex.push('…');
    hex
}

/// A new file of at most `SHORT_FILE` lines of at most `LONG_LINE`
/// characters shows whole; another its first `HEAD_LINES`, each cut at
/// `LONG_LINE`.
const SHORT_FILE: usize = 20;
const HEAD_LINES: usize = 10;
const LONG_LINE: usize = 160;

/// A new file: a short one whole, another as its first lines, then how
/// many more, its size and digest.
fn head(path: &Path, new: &[u8]) -> String {
    let whole = diff(path, None, new);
    let Ok(text) = std::str::from_utf8(new) else {
        return whole;
    };
    let lines = text.lines().count();
    let long = |l: &str| l.chars().count() > LONG_LINE;
    if lines <= SHORT_FILE && !text.lines().any(long) {
        return whole;
    }
    let mut out: Vec<String> = whole.lines().take(3).map(str::to_string).collect();
    for line in text.lines().take(HEAD_LINES) {
        match line.char_indices().nth(LONG_LINE) {
            Some((cut, _)) => out.push(format!("+{}…", &line[..cut])),
            None => out.push(format!("+{line}")),
        }
    }
    let more = match lines.saturating_sub(HEAD_LINES) {
        0 => String::new(),
        n => format!("{n} more lines, "),
    };
    let s = if lines == 1 { "" } else { "s" };
    out.push(format!(
        "... ({more}{lines} line{s}, {} bytes, sha256 {}; --full-diff shows it whole)",
        new.len(),
        short_digest(new)
    ));
    out.join("\n")
}

/// A unified diff of two contents; binary content is described, not shown.
fn diff(path: &Path, old: Option<&[u8]>, new: &[u8]) -> String {
    let name = path.display().to_string();
    let (Ok(old_text), Ok(new_text)) = (
        std::str::from_utf8(old.unwrap_or_default()),
        std::str::from_utf8(new),
    ) else {
        return format!(
            "binary content changed ({} -> {} bytes)",
            old.map_or(0, <[u8]>::len),
            new.len()
        );
    };
    let d = similar::TextDiff::from_lines(old_text, new_text);
    let from = if old.is_some() {
        name.clone()
    } else {
        "/dev/null".to_string()
    };
    let text = d
        .unified_diff()
        .context_radius(3)
        .header(&from, &name)
        .to_string();
    const MAX_LINES: usize = 400;
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() > MAX_LINES {
        format!(
            "{}\n... {} more lines",
            lines[..MAX_LINES].join("\n"),
            lines.len() - MAX_LINES
        )
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_shows_lines_and_describes_binary() {
        let d = describe_change(
            Path::new("/etc/x"),
            Some(b"a\nb\n"),
            b"a\nc\n",
            Shown::Lines,
        );
        assert!(d.contains("-b\n+c"), "{d}");
        let bin = describe_change(Path::new("/x"), Some(&[0xff, 0xfe]), b"x", Shown::Lines);
        assert!(bin.starts_with("binary"), "{bin}");
    }

    #[test]
    fn a_new_file_shows_its_head_a_changed_one_its_diff() {
        let long: String = (1..=30).map(|n| format!("line {n}\n")).collect();
        let d = describe_change(Path::new("/etc/x"), None, long.as_bytes(), Shown::Head);
        let lines: Vec<&str> = d.lines().collect();
        assert_eq!(
            lines[..3],
            ["--- /dev/null", "+++ /etc/x", "@@ -0,0 +1,30 @@"]
        );
        assert_eq!(lines[3], "+line 1");
        assert_eq!(lines[12], "+line 10");
        assert_eq!(
            lines[13],
            format!(
                "... (20 more lines, 30 lines, {} bytes, sha256 {}…; --full-diff shows it whole)",
                long.len(),
                &sha256_hex(long.as_bytes())[..12]
            )
        );
        let wide = format!("{}\n", "y".repeat(1023));
        let d = describe_change(Path::new("/f"), None, wide.as_bytes(), Shown::Head);
        let cut: Vec<&str> = d.lines().collect();
        assert_eq!(
            cut[3],
            format!("+{}…", "y".repeat(160)),
            "a long line is cut"
        );
        assert!(
            cut[4].starts_with("... (1 line, 1024 bytes, sha256 "),
            "{d}"
        );
        assert_eq!(lines.len(), 14);
        let whole = describe_change(Path::new("/etc/x"), None, long.as_bytes(), Shown::Lines);
        assert_eq!(whole.lines().count(), 33, "--full-diff: every line");
        let short = describe_change(Path::new("/etc/x"), None, b"a\nb\n", Shown::Head);
        assert!(short.ends_with("+a\n+b\n"), "a short file whole: {short}");
        let changed = describe_change(
            Path::new("/etc/x"),
            Some(b"a\n"),
            long.as_bytes(),
            Shown::Head,
        );
        assert!(
            changed.contains("+line 30"),
            "a change shows its whole diff"
        );
    }

    #[test]
    fn digest_shows_sizes_and_digests_only() {
        let d = describe_change(
            Path::new("/k"),
            Some(b"old secret\n"),
            b"new secret!\n",
            Shown::Digest,
        );
        assert_eq!(
            d,
            format!(
                "content changed (11 -> 12 bytes, sha256 {}… -> {}…)",
                &sha256_hex(b"old secret\n")[..12],
                &sha256_hex(b"new secret!\n")[..12]
            )
        );
        let created = describe_change(Path::new("/k"), None, b"key", Shown::Digest);
        assert!(created.starts_with("content (3 bytes, sha256 ") && !created.contains("key"));
        assert!(others_may_read(0o644) && !others_may_read(0o640) && !others_may_read(0o600));
    }
}
