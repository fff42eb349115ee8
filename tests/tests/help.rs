//! Every leaf command of every binary explains itself: `--help` has a
//! description and ends with an example that runs the command, as a
//! newcomer reads it, walking the commands the way they would.

use std::process::Command;

use cm_e2e::bin;

/// The subcommands a `--help` page lists (clap's "Commands:" section).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

fn help_of(binary: &str, path: &[String]) -> String {
    let out = Command::new(bin(binary))
        .args(path)
        .arg("--help")
        .output()
        .expect("the binary runs");
    assert!(out.status.success(), "{binary} {path:?} --help: {out:?}");
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// Walks the command tree; returns the leaves seen.
fn check(binary: &str, path: Vec<String>, leaves: &mut Vec<String>) {
    let help = help_of(binary, &path);
    let subs = subcommands(&help);
    if subs.is_empty() {
        let command = format!("{binary} {}", path.join(" "));
        let description = help.lines().next().unwrap_or_default();
        assert!(
            !description.trim().is_empty() && !description.starts_with("Usage:"),
            "{command}: no description"
        );
        let example = help
            .split("\nExample")
            .nth(1)
            .unwrap_or_else(|| panic!("{command}: no example in its --help"));
        assert!(
            example.contains(&command),
            "{command}: its example does not run it:{example}"
        );
        leaves.push(command);
    }
    for sub in subs {
        let mut next = path.clone();
        next.push(sub);
        check(binary, next, leaves);
    }
}

#[test]
fn every_leaf_command_of_every_binary_has_help_and_an_example() {
    for (binary, at_least) in [("cmctl", 30), ("cm-agent", 5), ("cm-server", 3)] {
        let mut leaves = Vec::new();
        check(binary, Vec::new(), &mut leaves);
        assert!(
            leaves.len() >= at_least,
            "{binary}: only {} commands found: {leaves:?}",
            leaves.len()
        );
    }
}
