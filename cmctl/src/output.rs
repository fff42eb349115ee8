//! Tables for people, JSON for scripts.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// Print rows as an aligned table (human) or `json` as JSON.
pub fn print<T: Serialize>(format: Format, headers: &[&str], rows: Vec<Vec<String>>, json: &T) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(json).unwrap_or_else(|_| "null".into())
        ),
        Format::Human => println!("{}", table(headers, &rows)),
    }
}

pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(headers.to_vec())];
    out.extend(
        rows.iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    out.join("\n")
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC` (no time zone database needed).
pub fn time(secs: i64) -> String {
    if secs <= 0 {
        return "-".into();
    }
    format!("{} UTC", cm_model::time::utc(secs))
}

/// How long ago (or until) `secs`, for columns people scan: "3 minutes ago".
pub fn ago(secs: i64) -> String {
    cm_model::time::ago(secs)
}

/// A length of time for a table: `45 s`, `12 min`, `5 h`, `3 d`.
pub fn duration(secs: u64) -> String {
    cm_model::time::span(secs)
}

/// A date and how far it is from now: `2026-11-25 12:53:35 UTC (in 7 days)`.
pub fn when(secs: i64) -> String {
    cm_model::time::when(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_the_largest_unit_that_fits() {
        assert_eq!(duration(0), "0 s");
        assert_eq!(duration(119), "119 s");
        assert_eq!(duration(125), "2 min");
        assert_eq!(duration(7300), "2 h");
        assert_eq!(duration(3 * 86_400), "3 d");
    }

    #[test]
    fn time_is_utc() {
        assert_eq!(time(0), "-");
        assert_eq!(time(1_795_611_215), "2026-11-25 12:53:35 UTC");
    }

    #[test]
    fn table_aligns() {
        assert_eq!(
            table(&["a", "bb"], &[vec!["xxx".into(), "y".into()]]),
            "a    bb\nxxx  y"
        );
    }
}
