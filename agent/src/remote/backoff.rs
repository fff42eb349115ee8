//! Waiting between calls to a server that did not answer: exponential
//! backoff with jitter, so a fleet that lost its server together does not
//! come back in step.

use std::time::Duration;

/// Exponential backoff with jitter: 1 s doubling to a 60 s ceiling for
/// calls to the server.
pub struct Backoff {
    next: Duration,
    first: Duration,
    max: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(60);

    pub fn new() -> Backoff {
        Backoff::between(Self::FIRST, Self::MAX)
    }

    pub fn between(first: Duration, max: Duration) -> Backoff {
        Backoff {
            next: first,
            first,
            max,
        }
    }

    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// The next wait: uniform in [ceiling/2, ceiling], so a fleet that lost
    /// its server together does not come back in step.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.next;
        self.next = (self.next * 2).min(self.max);
        ceiling / 2 + random_up_to(ceiling / 2)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

/// A uniformly random duration in [0, max].
pub fn random_up_to(max: Duration) -> Duration {
    let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(0..=ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_ceiling_with_jitter() {
        let mut b = Backoff::new();
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(d <= Backoff::MAX && d >= Backoff::MAX / 64);
        }
        let late = b.next_delay();
        assert!(late >= Backoff::MAX / 2, "{late:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }
}
