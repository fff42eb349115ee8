//! Latency samples and their summary: every request's duration is kept
//! (a 20 s run at 10,000 requests per second is 200,000 numbers), sorted
//! once, and read at the percentiles. Nearest-rank percentiles, no
//! interpolation, no histogram buckets.

use std::time::Duration;

/// The durations of one phase's successful requests, in microseconds.
#[derive(Debug, Default)]
pub struct Samples {
    micros: Vec<u32>,
    pub errors: u64,
}

impl Samples {
    pub fn record(&mut self, d: Duration) {
        self.micros
            .push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
    }

    pub fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
        self.errors += other.errors;
    }

    pub fn summary(mut self, elapsed: Duration) -> Summary {
        self.micros.sort_unstable();
        let at = |p: f64| -> Duration {
            if self.micros.is_empty() {
                return Duration::ZERO;
            }
            let rank = ((p / 100.0) * self.micros.len() as f64).ceil() as usize;
            let i = rank.clamp(1, self.micros.len()) - 1;
            Duration::from_micros(u64::from(self.micros[i]))
        };
        Summary {
            requests: self.micros.len() as u64,
            errors: self.errors,
            elapsed,
            min: at(0.0),
            p50: at(50.0),
            p90: at(90.0),
            p99: at(99.0),
            max: at(100.0),
        }
    }
}

/// What a phase measured.
#[derive(Debug, Clone)]
pub struct Summary {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub min: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// `12.3 ms`, `850 µs`.
pub fn ms(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1000 {
        format!("{us} µs")
    } else {
        format!("{:.1} ms", us as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut s = Samples::default();
        for us in 1..=100 {
            s.record(Duration::from_micros(us));
        }
        let sum = s.summary(Duration::from_secs(1));
        assert_eq!(sum.min, Duration::from_micros(1));
        assert_eq!(sum.p50, Duration::from_micros(50));
        assert_eq!(sum.p99, Duration::from_micros(99));
        assert_eq!(sum.max, Duration::from_micros(100));
        assert_eq!(sum.requests, 100);
    }
}
