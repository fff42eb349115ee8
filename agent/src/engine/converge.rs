//! Converge: run each compiled resource in order, with guards, notifications
//! and failure handling, and build the run report.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cm_model::recipe::Timing;
use cm_model::report::{ResourceReport, RunReport, RunStatus};
use cm_model::secrets::Secrets;

use super::CompiledResource;
use crate::command::{Cmd, CommandError};
use crate::resources::{self, Cx, DynProvider, Outcome, ProviderError};

/// How long a guard command (`only_if`, `not_if`) may take.
const GUARD_TIMEOUT: Duration = Duration::from_secs(120);

/// What the report says instead of anything that holds a secret.
pub const SECRET_NOTE: &str = "changed, contains secrets";
/// What it says for a resource marked `sensitive: true` that holds none.
pub const SENSITIVE_NOTE: &str = "changed (sensitive: details hidden)";

/// Delayed notifications may queue more; this many rounds is a loop, not a recipe.
const MAX_DELAYED: usize = 1000;

/// Settings of one converge.
pub struct Options<'a> {
    pub why_run: bool,
    pub backup_dir: &'a Path,
    /// Set by SIGTERM: finish the resource in hand, run queued delayed notifications, stop.
    pub stop: &'a AtomicBool,
    pub secrets: &'a Secrets,
    /// New files whole in the report, not their first lines.
    pub full_diff: bool,
}

/// Converge `resources` in order; `observe` sees each resource report as it is made.
pub fn converge(
    resources: &[CompiledResource],
    opts: &Options,
    observe: &mut dyn FnMut(&ResourceReport),
) -> RunReport {
    let started = Instant::now();
    let started_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut report = RunReport {
        status: RunStatus::Success,
        why_run: opts.why_run,
        started_at,
        resources_total: resources.len(),
        resources_changed: 0,
        resources_failed: 0,
        duration_ms: 0,
        error: None,
        plan_error: None,
        notices: Vec::new(),
        resources: Vec::new(),
    };
    let mut providers: Vec<Box<dyn DynProvider>> = Vec::with_capacity(resources.len());
    for r in resources {
        let build = resources::lookup(r.kind.name)
            .map(|p| p.build)
            .ok_or_else(|| format!("no provider for {}", r.kind.name));
        match build.and_then(|b| b(r).map_err(|e| format!("{} {}: {}", r.id(), e.field, e.message)))
        {
            Ok(p) => providers.push(p),
            Err(e) => {
                report.status = RunStatus::Failed;
                report.error = Some(format!("{}: {e}", r.origin));
                report.duration_ms = started.elapsed().as_millis() as u64;
                return report;
            }
        }
    }
    let mut run = Run {
        resources,
        providers,
        cx: Cx {
            full_diff: opts.full_diff,
            ..Cx::new(opts.why_run, opts.backup_dir.to_path_buf())
        },
        opts,
        delayed: VecDeque::new(),
        changed: vec![false; resources.len()],
        failed: vec![false; resources.len()],
        report: &mut report,
        observe,
    };
    // Each directory a run writes in is synced once, at its end.
    let syncs = crate::safe_path::DeferredSyncs::begin();
    run.preload_packages();
    let batches = run.package_batches();
    for i in 0..resources.len() {
        if opts.stop.load(Ordering::SeqCst) {
            run.fail(format!(
                "stopped by a signal after {i} of {} resources",
                resources.len()
            ));
            break;
        }
        run.cx.batch = batches[i].clone();
        let ok = run.resource(i, None);
        if !ok && !resources[i].ignore_failure {
            break;
        }
    }
    run.flush_delayed();
    if let Err(e) = syncs.finish() {
        run.fail(e.to_string());
    }
    let changed = run.changed.iter().filter(|c| **c).count();
    let failed: Vec<usize> = (0..resources.len()).filter(|&i| run.failed[i]).collect();
    report.resources_changed = changed;
    report.resources_failed = failed.len();
    if failed.iter().any(|&i| !resources[i].ignore_failure) {
        report.status = RunStatus::Failed;
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

/// A guard (`only_if`, `not_if`) that could not run or ran past its timeout.
#[derive(Debug, thiserror::Error)]
#[error("{guard}: {source}")]
struct GuardError {
    guard: &'static str,
    source: CommandError,
}

impl GuardError {
    fn without_output(&self) -> String {
        format!("{}: {}", self.guard, self.source.status())
    }
}

struct Run<'a, 'o> {
    resources: &'a [CompiledResource],
    providers: Vec<Box<dyn DynProvider>>,
    cx: Cx,
    opts: &'a Options<'a>,
    delayed: VecDeque<(usize, String)>,
    changed: Vec<bool>,
    failed: Vec<bool>,
    report: &'a mut RunReport,
    observe: &'o mut dyn FnMut(&ResourceReport),
}

impl Run<'_, '_> {
    fn fail(&mut self, why: String) {
        self.report.status = RunStatus::Failed;
        self.report.error.get_or_insert(why);
    }

    /// Read the state of every managed package at once.
    fn preload_packages(&mut self) {
        let names: Vec<String> = self
            .providers
            .iter()
            .filter_map(|p| p.package_request())
            .map(|r| r.name)
            .collect();
        if !names.is_empty() {
            self.cx.packages.load(&names);
        }
    }

    /// For each resource, the package installs adjacent to it (including itself)
    /// that can go into one apt-get: consecutive plain installs with no guards.
    fn package_batches(&self) -> Vec<Vec<resources::package::Request>> {
        let batchable = |i: usize| {
            let r = &self.resources[i];
            self.providers[i].joins_install_batch()
                && r.only_if.is_none()
                && r.not_if.is_none()
                && r.creates.is_none()
        };
        let mut out = vec![Vec::new(); self.resources.len()];
        let mut i = 0;
        while i < self.resources.len() {
            let mut j = i;
            let mut group = Vec::new();
            while j < self.resources.len() && batchable(j) {
                match self.providers[j].package_request() {
                    Some(req) => group.push(req),
                    None => break,
                }
                j += 1;
            }
            for slot in out.iter_mut().take(j).skip(i) {
                *slot = group.clone();
            }
            i = j.max(i + 1);
        }
        out
    }

    /// Converge resource `i` with its own actions, or with `only` (a notification).
    /// Returns false when it failed.
    fn resource(&mut self, i: usize, only: Option<&str>) -> bool {
        let r = &self.resources[i];
        let start = Instant::now();
        let actions: Vec<String> = match only {
            Some(a) => vec![a.to_string()],
            None => r.actions.clone(),
        };
        let mut entry = ResourceReport {
            kind: r.kind.name.to_string(),
            name: self.redact(&r.name),
            action: actions.join(","),
            changed: false,
            duration_ms: 0,
            error: None,
            skipped: None,
            changes: Vec::new(),
            diff: None,
            sensitive: r.sensitive,
        };
        match self.guards(r) {
            Err(e) => {
                entry.error = Some(self.describe_error(r, &e.to_string(), &e.without_output()))
            }
            Ok(Some(skip)) => entry.skipped = Some(skip),
            Ok(None) => {
                let mut outcome = Outcome::unchanged();
                for action in &actions {
                    match self.providers[i].converge(action, &mut self.cx) {
                        Ok(o) => {
                            outcome.changes.extend(o.changes);
                            outcome.diff = outcome.diff.or(o.diff);
                        }
                        Err(e) => {
                            entry.error = Some(self.describe_provider_error(r, &e));
                            break;
                        }
                    }
                }
                entry.changed = outcome.is_changed();
                if r.sensitive && entry.changed {
                    let note = if r.holds_secret {
                        SECRET_NOTE
                    } else {
                        SENSITIVE_NOTE
                    };
                    entry.changes = vec![note.to_string()];
                } else {
                    entry.changes = outcome.changes;
                    entry.diff = outcome.diff;
                }
            }
        }
        entry.duration_ms = start.elapsed().as_millis() as u64;
        let (changed, failed) = (entry.changed, entry.error.is_some());
        (self.observe)(&entry);
        self.report.resources.push(entry);
        self.failed[i] |= failed;
        if changed {
            self.changed[i] = true;
            if !self.notify(i) {
                return false;
            }
        }
        !failed
    }

    fn describe_provider_error(&self, r: &CompiledResource, e: &ProviderError) -> String {
        if r.sensitive {
            self.describe_error(r, "", &e.without_output())
        } else {
            self.describe_error(r, &e.to_string(), "")
        }
    }

    /// An error for the report, secrets redacted: `full`, or for a sensitive
    /// resource `without_output` (never what a command printed).
    fn describe_error(&self, r: &CompiledResource, full: &str, without_output: &str) -> String {
        if r.sensitive {
            format!(
                "{} (details hidden: sensitive)",
                self.redact(without_output)
            )
        } else {
            self.redact(full)
        }
    }

    /// None to run; Some(reason) to skip; Err when a guard could not run.
    fn guards(&self, r: &CompiledResource) -> Result<Option<String>, GuardError> {
        if let Some(path) = &r.creates
            && Path::new(path).exists()
        {
            return Ok(Some(format!("creates {path} exists")));
        }
        if let Some(cmd) = &r.only_if
            && !self.guard_passes("only_if", cmd)?
        {
            return Ok(Some("only_if failed".to_string()));
        }
        if let Some(cmd) = &r.not_if
            && self.guard_passes("not_if", cmd)?
        {
            return Ok(Some("not_if succeeded".to_string()));
        }
        Ok(None)
    }

    fn guard_passes(&self, guard: &'static str, cmd: &str) -> Result<bool, GuardError> {
        let failed = |source| GuardError { guard, source };
        let f = Cmd::shell(cmd)
            .timeout(GUARD_TIMEOUT)
            .run()
            .map_err(failed)?;
        if f.timed_out {
            return Err(failed(f.error()));
        }
        Ok(f.success())
    }

    /// Fire resource `i`'s notifications. False when an immediate one failed
    /// (and may not be ignored): the run stops as if `i` itself had failed.
    fn notify(&mut self, i: usize) -> bool {
        for (target, action, timing) in self.resources[i].notifies.clone() {
            match timing {
                Timing::Immediately => {
                    if !self.resource(target, Some(&action))
                        && !self.resources[target].ignore_failure
                    {
                        return false;
                    }
                }
                Timing::Delayed => {
                    if !self
                        .delayed
                        .iter()
                        .any(|(t, a)| *t == target && *a == action)
                    {
                        self.delayed.push_back((target, action));
                    }
                }
            }
        }
        true
    }

    fn flush_delayed(&mut self) {
        let mut rounds = 0;
        while let Some((target, action)) = self.delayed.pop_front() {
            rounds += 1;
            if rounds > MAX_DELAYED {
                self.fail("delayed notifications keep notifying each other".into());
                break;
            }
            self.resource(target, Some(&action));
        }
    }

    fn redact(&self, text: &str) -> String {
        self.opts.secrets.redact(text)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use serde_json::json;

    use super::*;

    fn sensitive(kind: &str, action: &str, properties: serde_json::Value) -> CompiledResource {
        let kind = cm_model::resources::lookup(kind).unwrap();
        let properties = properties.as_object().unwrap().clone();
        CompiledResource {
            actions: vec![action.to_string()],
            ignore_failure: true,
            sensitive: true,
            ..CompiledResource::bare(kind, "x", properties, "converge.rs")
        }
    }

    #[test]
    fn a_sensitive_resource_keeps_the_reason_of_its_error_but_not_what_a_command_printed() {
        let backup = tempfile::tempdir().unwrap();
        let resources = [
            sensitive(
                "execute",
                "run",
                json!({"command": "echo hunter2 >&2; exit 3"}),
            ),
            sensitive(
                "service",
                "start",
                json!({"service_name": "cm-no-such-service"}),
            ),
        ];
        let opts = Options {
            why_run: false,
            backup_dir: backup.path(),
            stop: &AtomicBool::new(false),
            secrets: &Secrets::default(),
            full_diff: false,
        };
        let report = converge(&resources, &opts, &mut |_| {});
        let errors: Vec<&str> = report
            .resources
            .iter()
            .map(|r| r.error.as_deref().unwrap())
            .collect();
        assert_eq!(errors[0], "exit 3 (details hidden: sensitive)");
        assert!(
            errors[1].ends_with(
                "cm-no-such-service: is the package that ships cm-no-such-service installed? \
                 (details hidden: sensitive)"
            ),
            "{}",
            errors[1]
        );
    }
}
