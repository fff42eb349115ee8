//! Giving the system back what the allocator keeps after a burst.
//!
//! A pass over 10,000 nodes allocates and frees a few hundred thousand
//! small objects; glibc keeps the freed pages for reuse, and after an
//! enrollment burst that was several times the live heap (bench/README.md,
//! "cm-bench idle"). Once passes have stopped for a while, `malloc_trim`
//! returns the free pages of every arena.

use std::sync::Arc;
use std::time::Duration;

use crate::state::State;

/// How long passes must have stopped before the trim.
const QUIET: Duration = Duration::from_secs(2);

/// Trim after `QUIET` unless another pass ran or runs meanwhile (`passes`
/// is the count after the pass that just ended).
pub fn trim_when_quiet(state: &Arc<State>, passes: u64) {
    let state = state.clone();
    tokio::spawn(async move {
        tokio::time::sleep(QUIET).await;
        if state.recompute.passes() == passes && state.recompute.is_idle() {
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    });
}

/// Return free memory of every arena to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() {
    // SAFETY: malloc_trim takes a size and touches only the allocator's
    // own free lists, under its locks.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() {}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    /// This process's private resident memory, KiB.
    fn rss_anon_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn a_trim_gives_back_what_a_burst_of_small_objects_left() {
        // 64 MiB in small objects, as a pass makes them, then freed: glibc
        // keeps the pages (the top chunk alone would be trimmed anyway, so
        // one object stays alive at the end).
        let objects: Vec<Box<[u8; 512]>> = (0..128 * 1024).map(|_| Box::new([1; 512])).collect();
        let keep = Box::new([2u8; 512]);
        drop(objects);
        let before = rss_anon_kib();
        super::trim();
        let after = rss_anon_kib();
        assert_eq!(keep[0], 2);
        assert!(
            after + 32 * 1024 < before,
            "RssAnon {before} KiB before the trim, {after} KiB after"
        );
    }
}
