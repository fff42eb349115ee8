//! The running kernel and the machine architecture.
//!
//! Both come from `/proc/sys/kernel/` (`osrelease`, `arch`), the files
//! `uname -r` and `uname -m` report. `arch` appeared in Linux 5.x; on an
//! older kernel the architecture the agent was built for stands in, which
//! is the kernel's for every native build on the platforms cm supports.

use serde::{Deserialize, Serialize};
use tracing::debug;

use super::source::SystemRoot;

/// The running kernel; templates see it as `node.kernel.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KernelFacts {
    /// `uname -r`: `6.1.0-18-cloud-amd64`.
    pub release: String,
    /// `uname -m`: `x86_64`, `aarch64`.
    pub machine: String,
}

pub(super) fn gather(root: &SystemRoot) -> KernelFacts {
    KernelFacts {
        release: root
            .read_value("/proc/sys/kernel/osrelease")
            .unwrap_or_default(),
        machine: root
            .read_value("/proc/sys/kernel/arch")
            .unwrap_or_else(build_machine),
    }
}

fn build_machine() -> String {
    let machine = std::env::consts::ARCH;
    debug!(
        machine,
        "kernel.machine: taken from the agent's build target"
    );
    machine.to_string()
}

/// The Debian architecture name for a kernel machine name, the spelling
/// apt, dpkg and package file names use (`amd64`, not `x86_64`). Unknown
/// machines pass through unchanged.
pub(super) fn debian_arch(machine: &str) -> String {
    let arch = match machine {
        "x86_64" => "amd64",
        "aarch64" | "arm64" => "arm64",
        "i386" | "i486" | "i586" | "i686" => "i386",
        "armv7l" | "armv6l" => "armhf",
        "ppc64le" => "ppc64el",
        other => other,
    };
    arch.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::source::fake_root;

    #[test]
    fn kernel_machine_names_map_to_debian_arches() {
        assert_eq!(debian_arch("x86_64"), "amd64");
        assert_eq!(debian_arch("aarch64"), "arm64");
        assert_eq!(debian_arch("i686"), "i386");
        assert_eq!(debian_arch("ppc64le"), "ppc64el");
        assert_eq!(debian_arch("s390x"), "s390x");
    }

    #[test]
    fn missing_arch_file_falls_back_to_build_target() {
        let (_dir, root) = fake_root(&[]);
        let kernel = gather(&root);
        assert_eq!(kernel.release, "");
        assert_eq!(kernel.machine, std::env::consts::ARCH);
    }
}
