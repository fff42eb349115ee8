//! A release from git (Debian's `git`, found on the agent's fixed PATH):
//! the one commit fetched alone (`--depth 1`) into a scratch bare
//! repository, then written out with `git archive` as a tar file, which is
//! unpacked like any tarball. So a release from git passes the same checks
//! as one from a tarball, holds no `.git`, and git itself only ever writes
//! into its scratch directory. What `git archive` leaves out (paths marked
//! `export-ignore` in `.gitattributes`, submodules) is not in the release.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use super::DeployError;
use crate::command::{Cmd, Finished};
use crate::resources::CommandFailed;
use crate::safe_path::Dir;

const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// The archive `git archive` writes in the scratch repository.
const ARCHIVE: &str = "release.tar";

/// Fetch `revision` of `url` into `scratch` (an empty directory of the
/// agent's) and return its tree as a tar archive, open for reading.
pub fn archive(
    url: &str,
    revision: &str,
    scratch: &Dir,
    timeout: Duration,
) -> Result<File, DeployError> {
    let at = scratch.path();
    run(at, timeout, &["init", "--quiet", "--bare"], "git init")?;
    run(
        at,
        timeout,
        &[
            "fetch",
            "--quiet",
            "--depth",
            "1",
            "--no-tags",
            "--",
            url,
            revision,
        ],
        &format!("git fetch {url} {revision}"),
    )?;
    // A tag object's id names a commit too, but is not one: the release
    // would not be the revision it is named after.
    let kind = run(
        at,
        timeout,
        &["cat-file", "-t", revision],
        &format!("git cat-file -t {revision}"),
    )?;
    let kind = kind.stdout.trim();
    if kind != "commit" {
        return Err(DeployError::NotACommit {
            url: url.to_string(),
            revision: revision.to_string(),
            kind: kind.to_string(),
        });
    }
    run(
        at,
        timeout,
        &[
            // Files 0644 and directories 0755 (git's default masks 002).
            "-c",
            "tar.umask=022",
            "archive",
            "--format=tar",
            &format!("--output={ARCHIVE}"),
            revision,
        ],
        &format!("git archive {revision}"),
    )?;
    Ok(scratch.open_read(ARCHIVE.as_ref())?)
}

/// Run git in `at`; `shown` names the command in an error.
fn run(
    at: &Path,
    timeout: Duration,
    args: &[&str],
    shown: &str,
) -> Result<Finished, CommandFailed> {
    let mut cmd = Cmd::new("git", args)
        .timeout(timeout)
        .env("PATH", PATH)
        .env("LC_ALL", "C")
        // Never wait for a password or a host key nobody will type.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    cmd.cwd = Some(at.to_path_buf());
    cmd.run()
        .and_then(Finished::ok)
        .map_err(|e| CommandFailed::new(shown, e))
}
