//! CPU count and memory sizes, the figures recipes size services from
//! (memcached's cache, Cassandra's heap, Apache's worker count).

use tracing::debug;

use super::source::SystemRoot;

/// Online CPUs: sysfs's `online` list, else the `processor` lines of
/// `/proc/cpuinfo`, else the CPUs this process may run on. Zero only when
/// none of the three answers.
pub(super) fn cpu_count(root: &SystemRoot) -> u32 {
    root.read("/sys/devices/system/cpu/online")
        .and_then(|list| count_cpu_list(&list))
        .or_else(|| {
            root.read("/proc/cpuinfo")
                .and_then(|t| count_processors(&t))
        })
        .or_else(schedulable_cpus)
        .unwrap_or_else(|| {
            debug!("cpu_count: no source counted any CPU");
            0
        })
}

/// Counts a kernel CPU list such as `0-3,5,8-9` (cpuset(7) "list format").
pub(super) fn count_cpu_list(list: &str) -> Option<u32> {
    let mut count = 0u32;
    for range in list.trim().split(',').filter(|r| !r.is_empty()) {
        let (first, last) = range.split_once('-').unwrap_or((range, range));
        let first: u32 = first.trim().parse().ok()?;
        let last: u32 = last.trim().parse().ok()?;
        count += last.checked_sub(first)? + 1;
    }
    (count > 0).then_some(count)
}

fn count_processors(cpuinfo: &str) -> Option<u32> {
    let count = cpuinfo
        .lines()
        .filter(|line| line.split(':').next().map(str::trim) == Some("processor"))
        .count();
    u32::try_from(count).ok().filter(|c| *c > 0)
}

fn schedulable_cpus() -> Option<u32> {
    let count = std::thread::available_parallelism().ok()?;
    u32::try_from(count.get()).ok()
}

/// Memory and swap totals in MiB, rounded down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct MemoryTotals {
    pub(super) memory_mib: u64,
    pub(super) swap_mib: u64,
}

pub(super) fn memory(root: &SystemRoot) -> MemoryTotals {
    match root.read("/proc/meminfo") {
        Some(text) => parse_meminfo(&text),
        None => MemoryTotals::default(),
    }
}

/// Reads `MemTotal` and `SwapTotal` (in kB, which the kernel means as KiB).
pub(super) fn parse_meminfo(text: &str) -> MemoryTotals {
    let kib = |key: &str| {
        let value = meminfo_kib(text, key);
        if value.is_none() {
            debug!(key, "memory: field missing from /proc/meminfo");
        }
        value.unwrap_or(0)
    };
    MemoryTotals {
        memory_mib: kib("MemTotal") / 1024,
        swap_mib: kib("SwapTotal") / 1024,
    }
}

fn meminfo_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        if name.trim() != key {
            return None;
        }
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::source::fake_root;

    const MEMINFO: &str = "\
MemTotal:        4026324 kB
MemFree:          181908 kB
MemAvailable:    2733308 kB
SwapCached:            0 kB
SwapTotal:       1048572 kB
SwapFree:        1048572 kB
HugePages_Total:       0
";

    #[test]
    fn meminfo_totals_are_whole_mib() {
        assert_eq!(
            parse_meminfo(MEMINFO),
            MemoryTotals {
                memory_mib: 3931,
                swap_mib: 1023,
            }
        );
    }

    #[test]
    fn meminfo_without_swap_line_reports_zero_swap() {
        let totals = parse_meminfo("MemTotal: 2048 kB\n");
        assert_eq!(totals.memory_mib, 2);
        assert_eq!(totals.swap_mib, 0);
    }

    #[test]
    fn cpu_lists_count_ranges_and_singles() {
        assert_eq!(count_cpu_list("0\n"), Some(1));
        assert_eq!(count_cpu_list("0-1\n"), Some(2));
        assert_eq!(count_cpu_list("0-3,5,8-9\n"), Some(7));
        assert_eq!(count_cpu_list("garbage"), None);
        assert_eq!(count_cpu_list("3-1"), None);
        assert_eq!(count_cpu_list(""), None);
    }

    #[test]
    fn cpuinfo_counts_processor_lines_when_sysfs_is_missing() {
        let cpuinfo = "processor\t: 0\nmodel name\t: x\n\nprocessor\t: 1\n\nprocessor\t: 2\n";
        let (_dir, root) = fake_root(&[("proc/cpuinfo", cpuinfo)]);
        assert_eq!(cpu_count(&root), 3);
    }
}
