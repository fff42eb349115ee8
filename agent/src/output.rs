//! The converge log for people: one line per resource as it finishes, a diff
//! under every changed file, and a summary line. Colors only on a terminal and
//! never with NO_COLOR.

use std::io::{IsTerminal, Write};

use cm_model::report::{ResourceReport, RunReport};
use owo_colors::{OwoColorize, Stream};

/// One line on stdout. A closed pipe (`cm-agent run --once | head`) must not
/// stop a converge half way, as `println!`'s panic would: write errors are
/// ignored, and the run goes on, reports and exits with its own status.
pub fn say(line: std::fmt::Arguments) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Print one resource's line (and diff) to `out`.
pub fn resource_line(out: &mut dyn Write, r: &ResourceReport, why_run: bool) {
    let id = format!("{}[{}]", r.kind, r.name);
    let status = if let Some(e) = &r.error {
        format!(
            "{} {}",
            "FAILED:".if_supports_color(Stream::Stdout, |t| t.red()),
            e
        )
    } else if let Some(s) = &r.skipped {
        format!("skipped ({s})")
    } else if r.changed {
        let verb = if why_run { "would change" } else { "changed" };
        let text = format!("{verb}: {}", r.changes.join(", "));
        text.if_supports_color(Stream::Stdout, |t| t.yellow())
            .to_string()
    } else {
        "up to date".to_string()
    };
    let _ = writeln!(
        out,
        "  {id} {} ... {status} ({} ms)",
        r.action, r.duration_ms
    );
    if let Some(d) = &r.diff {
        for line in d.lines() {
            let colored = match line.chars().next() {
                Some('+') if !line.starts_with("+++") => line
                    .if_supports_color(Stream::Stdout, |t| t.green())
                    .to_string(),
                Some('-') if !line.starts_with("---") => line
                    .if_supports_color(Stream::Stdout, |t| t.red())
                    .to_string(),
                _ => line.to_string(),
            };
            let _ = writeln!(out, "      {colored}");
        }
    }
}

/// The closing summary: `N resources, M changed, K failed in T ms`, after
/// the run's notices; for a run that failed before its first resource (the
/// cookbooks did not load or compile, the lock was held), that and why,
/// never a line of counts that reads like a clean run.
pub fn summary(out: &mut dyn Write, report: &RunReport) {
    for n in &report.notices {
        let _ = writeln!(
            out,
            "{} {n}",
            "warning:".if_supports_color(Stream::Stdout, |t| t.yellow())
        );
    }
    if let Some(e) = failed_before_converging(report) {
        let _ = writeln!(
            out,
            "{} {e}",
            "run FAILED before converging (nothing was changed):"
                .if_supports_color(Stream::Stdout, |t| t.red())
        );
        return;
    }
    if let Some(e) = &report.error {
        let _ = writeln!(out, "error: {e}");
    }
    let what = if report.why_run {
        " (why-run: nothing was changed)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "{} resources, {} changed, {} failed in {} ms{what}",
        report.resources_total,
        report.resources_changed,
        report.resources_failed,
        report.duration_ms
    );
}

/// Why a failed run stopped before converging any resource, if it did.
pub fn failed_before_converging(report: &RunReport) -> Option<&str> {
    report
        .error
        .as_deref()
        .filter(|_| report.failed() && report.resources.is_empty())
}

/// Whether stdout is a terminal (progress and colors are for people only).
pub fn is_terminal() -> bool {
    std::io::stdout().is_terminal()
}
