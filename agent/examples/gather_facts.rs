//! Prints this machine's facts as JSON and how long `gather()` takes.
//!
//! `cargo run --release -p cm-agent --example gather_facts [CALLS]`
//!
//! A benchmark, not a test (tests never time): the figures go to stderr so
//! stdout stays the JSON a `--node` file can start from.

use std::time::{Duration, Instant};

use cm_agent::facts;

fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(1000)
        .max(1);
    let mut timings: Vec<Duration> = (0..calls)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(facts::gather());
            start.elapsed()
        })
        .collect();
    timings.sort();
    let percentile = |p: usize| timings[(timings.len() - 1) * p / 100];
    eprintln!(
        "gather() over {calls} calls: min {:?}, median {:?}, p99 {:?}, max {:?}",
        timings[0],
        percentile(50),
        percentile(99),
        timings[timings.len() - 1],
    );
    match serde_json::to_string_pretty(&facts::gather()) {
        Ok(json) => println!("{json}"),
        Err(error) => eprintln!("facts do not serialize: {error}"),
    }
}
