//! How the node is running: its init system, whether it is a container,
//! and how long it has been up.
//!
//! The init system decides how the service provider works, and a container
//! may run neither systemd nor sysvinit as PID 1 while `/etc/init.d` exists
//! (decisions.md, "How the init system is detected"), so both are decided from
//! markers the init systems themselves leave, never from what is installed.

use serde::{Deserialize, Serialize};
use tracing::debug;

use super::source::SystemRoot;

/// The service manager in charge of the node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum InitSystem {
    /// systemd is PID 1 (`/run/systemd/system` exists, sd_booted(3)).
    #[serde(rename = "systemd")]
    Systemd,
    /// sysvinit is PID 1 (`/proc/1/comm` is `init`).
    #[serde(rename = "sysvinit")]
    Sysvinit,
    /// Something else is PID 1 (a container's shell or entrypoint): init
    /// scripts have to be run directly.
    #[default]
    #[serde(rename = "none")]
    NoInit,
}

pub(super) fn init_system(root: &SystemRoot) -> InitSystem {
    if root.exists("/run/systemd/system") {
        return InitSystem::Systemd;
    }
    match root.read_value("/proc/1/comm").as_deref() {
        Some("init") => InitSystem::Sysvinit,
        pid1 => {
            debug!(?pid1, "init: PID 1 is neither systemd nor init");
            InitSystem::NoInit
        }
    }
}

/// The container runtime the node runs in, if a cheap marker says so:
/// systemd's own verdict, the engines' marker files, then PID 1's cgroup.
pub(super) fn container(root: &SystemRoot) -> Option<String> {
    if root.exists("/run/systemd/container")
        && let Some(runtime) = root.read_value("/run/systemd/container")
    {
        return Some(runtime);
    }
    if root.exists("/.dockerenv") {
        return Some("docker".to_string());
    }
    if root.exists("/run/.containerenv") {
        return Some("podman".to_string());
    }
    root.read("/proc/1/cgroup")
        .and_then(|cgroup| container_from_cgroup(&cgroup))
}

/// Names the runtime from cgroup paths such as `/docker/<id>` or
/// `/kubepods/...`; a host's PID 1 sits at `/` or `/init.scope`.
pub(super) fn container_from_cgroup(cgroup: &str) -> Option<String> {
    let paths = cgroup.lines().filter_map(|line| line.splitn(3, ':').nth(2));
    for path in paths {
        let runtime = if path.contains("kubepods") {
            "kubernetes"
        } else if path.contains("docker") {
            "docker"
        } else if path.contains("libpod") {
            "podman"
        } else if path.starts_with("/lxc") {
            "lxc"
        } else {
            continue;
        };
        return Some(runtime.to_string());
    }
    None
}

/// Whole seconds since boot, from the first field of `/proc/uptime`.
pub(super) fn uptime_seconds(root: &SystemRoot) -> u64 {
    let seconds = root
        .read("/proc/uptime")
        .and_then(|text| parse_uptime(&text));
    seconds.unwrap_or_else(|| {
        debug!("uptime_seconds: /proc/uptime unreadable or malformed");
        0
    })
}

fn parse_uptime(text: &str) -> Option<u64> {
    let first = text.split_whitespace().next()?;
    let whole = first.split('.').next()?;
    whole.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::source::fake_root;

    #[test]
    fn systemd_marker_wins_over_pid1_name() {
        let (_dir, root) =
            fake_root(&[("run/systemd/system/.keep", ""), ("proc/1/comm", "init\n")]);
        assert_eq!(init_system(&root), InitSystem::Systemd);
    }

    #[test]
    fn pid1_named_init_is_sysvinit() {
        let (_dir, root) = fake_root(&[("proc/1/comm", "init\n")]);
        assert_eq!(init_system(&root), InitSystem::Sysvinit);
    }

    #[test]
    fn other_pid1_means_no_init() {
        let (_dir, root) = fake_root(&[("proc/1/comm", "bash\n")]);
        assert_eq!(init_system(&root), InitSystem::NoInit);
        let json = serde_json::to_string(&InitSystem::NoInit).expect("serialize");
        assert_eq!(json, "\"none\"");
    }

    #[test]
    fn container_markers_name_the_runtime() {
        let (_dir, root) = fake_root(&[(".dockerenv", "")]);
        assert_eq!(container(&root).as_deref(), Some("docker"));
        let (_dir, root) = fake_root(&[("run/systemd/container", "lxc\n"), (".dockerenv", "")]);
        assert_eq!(container(&root).as_deref(), Some("lxc"));
        let (_dir, root) = fake_root(&[("proc/1/cgroup", "0::/init.scope\n")]);
        assert_eq!(container(&root), None);
    }

    #[test]
    fn cgroup_paths_name_the_runtime() {
        let docker = "12:memory:/docker/3f2a9c\n0::/docker/3f2a9c\n";
        assert_eq!(container_from_cgroup(docker).as_deref(), Some("docker"));
        let k8s = "0::/kubepods/besteffort/pod1/abc\n";
        assert_eq!(container_from_cgroup(k8s).as_deref(), Some("kubernetes"));
        assert_eq!(container_from_cgroup("9:name=systemd:/\n0::/\n"), None);
    }

    #[test]
    fn uptime_is_whole_seconds() {
        assert_eq!(parse_uptime("202.56 364.53\n"), Some(202));
        assert_eq!(parse_uptime(""), None);
    }
}
