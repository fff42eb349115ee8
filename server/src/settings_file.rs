//! `/etc/cm/server.yaml`: cm-server's settings in a file. Its keys are the
//! long flags in snake_case (`listen`, `data_dir`, `tls_name`, ...); a flag
//! or a `CM_*` variable wins over the file, the file over the defaults, as
//! for the agent's agent.yaml (docs/server.md, "Settings").

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use cm_model::LoadError;
use serde::Deserialize;

/// Read when it exists (and this user may read it); a file named with
/// `--config` must be readable.
pub const DEFAULT_FILE: &str = "/etc/cm/server.yaml";

/// One value in the file: a scalar, or a list for a repeatable flag.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Setting {
    One(Scalar),
    Many(Vec<Scalar>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Bool(bool),
    Int(i64),
    Text(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(n) => n.to_string(),
            Scalar::Text(t) => t.clone(),
        }
    }
}

/// `argv` with the settings of the file (`--config`, else [`DEFAULT_FILE`]
/// when present) put in for every option the command line and the
/// environment left unset. Arguments clap cannot parse are returned as they
/// are, for clap to report. The file's path comes back for error messages.
pub fn merge(
    cmd: clap::Command,
    argv: Vec<OsString>,
) -> Result<(Vec<OsString>, Option<PathBuf>), LoadError> {
    let Ok(matches) = cmd.clone().try_get_matches_from(&argv) else {
        return Ok((argv, None));
    };
    let named = matches.value_source("config") != Some(ValueSource::DefaultValue);
    let file = matches
        .get_one::<PathBuf>("config")
        .cloned()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_FILE));
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        // The default file is the service's (root:cm 0640): another user's
        // `cm-server completions` or `restore --check` goes without it.
        Err(e)
            if !named
                && matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) =>
        {
            return Ok((argv, None));
        }
        Err(e) => return Err(LoadError::in_file(&file, format!("cannot read: {e}"))),
    };
    let settings: BTreeMap<String, Option<Setting>> = if text.trim().is_empty() {
        BTreeMap::new()
    } else {
        cm_model::yaml::parse(&file, &text)?
    };
    let mut added = Vec::new();
    for (key, setting) in settings {
        let Some(arg) = settable(&cmd, &key) else {
            return Err(LoadError::in_file(
                &file,
                format!(
                    "unknown key `{key}`; known: {}",
                    settable_keys(&cmd).join(", ")
                ),
            ));
        };
        let source = matches.value_source(arg.get_id().as_str());
        let given = matches!(
            source,
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        let (Some(setting), false) = (setting, given) else {
            continue;
        };
        let long = arg.get_long().unwrap_or(arg.get_id().as_str());
        let values = match setting {
            Setting::One(one) => vec![one],
            Setting::Many(many) if matches!(arg.get_action(), clap::ArgAction::Append) => many,
            Setting::Many(many) => match <[Scalar; 1]>::try_from(many) {
                Ok([one]) => vec![one],
                Err(_) => {
                    return Err(LoadError::in_file(
                        &file,
                        format!("{key}: takes one value, not a list"),
                    ));
                }
            },
        };
        added.extend(
            values
                .iter()
                .map(|v| OsString::from(format!("--{long}={}", v.text()))),
        );
    }
    let mut merged = argv;
    let at = merged.len().min(1);
    merged.splice(at..at, added);
    Ok((merged, Some(file)))
}

/// The option a key sets: a long flag of the top-level command, in snake_case.
fn settable<'a>(cmd: &'a clap::Command, key: &str) -> Option<&'a clap::Arg> {
    cmd.get_arguments()
        .filter(|a| is_setting(a))
        .find(|a| a.get_long().is_some_and(|l| l.replace('-', "_") == key))
}

fn settable_keys(cmd: &clap::Command) -> Vec<String> {
    cmd.get_arguments()
        .filter(|a| is_setting(a))
        .filter_map(|a| a.get_long().map(|l| l.replace('-', "_")))
        .collect()
}

fn is_setting(arg: &clap::Arg) -> bool {
    !matches!(arg.get_id().as_str(), "config" | "help" | "version")
        && arg.get_long().is_some()
        && arg.get_action().takes_values()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    fn cmd() -> Command {
        Command::new("cm-server")
            .arg(
                Arg::new("config")
                    .long("config")
                    .default_value("/nonexistent/server.yaml")
                    .value_parser(clap::value_parser!(PathBuf)),
            )
            .arg(
                Arg::new("listen")
                    .long("listen")
                    .env("CM_TEST_LISTEN")
                    .default_value("0.0.0.0:8443"),
            )
            .arg(
                Arg::new("data_dir")
                    .long("data-dir")
                    .default_value("/var/lib/cm/server"),
            )
            .arg(
                Arg::new("tls_names")
                    .long("tls-name")
                    .action(ArgAction::Append),
            )
            .subcommand(Command::new("backup").arg(Arg::new("dir")))
    }

    fn merged(file_text: &str, args: &[&str]) -> Result<Vec<String>, String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.yaml");
        std::fs::write(&file, file_text).unwrap();
        let mut argv = vec![
            "cm-server".to_string(),
            format!("--config={}", file.display()),
        ];
        argv.extend(args.iter().map(|a| a.to_string()));
        merge(cmd(), argv.into_iter().map(OsString::from).collect())
            .map(|(argv, _)| argv.into_iter().map(|a| a.into_string().unwrap()).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_file_fills_what_the_command_line_left_unset() {
        let argv = merged(
            "listen: 127.0.0.1:9443\ndata_dir: /srv/cm\ntls_name: [cm.example.com, 10.0.0.5]\n",
            &["--data-dir", "/flag/wins", "backup", "/tmp/b"],
        )
        .unwrap();
        assert!(
            argv.contains(&"--listen=127.0.0.1:9443".to_string()),
            "{argv:?}"
        );
        assert!(argv.contains(&"--tls-name=cm.example.com".to_string()));
        assert!(argv.contains(&"--tls-name=10.0.0.5".to_string()));
        assert!(!argv.iter().any(|a| a == "--data-dir=/srv/cm"), "{argv:?}");
        // Before the subcommand, so its own arguments stay where they were.
        assert_eq!(argv[argv.len() - 2..], ["backup", "/tmp/b"]);
        let parsed = cmd().try_get_matches_from(&argv).unwrap();
        assert_eq!(
            parsed.get_one::<String>("listen").unwrap(),
            "127.0.0.1:9443"
        );
        assert_eq!(parsed.get_one::<String>("data_dir").unwrap(), "/flag/wins");
    }

    #[test]
    fn an_unknown_key_or_a_list_for_one_value_names_the_file_and_key() {
        let e = merged("lisen: 127.0.0.1:9443\n", &[]).unwrap_err();
        assert!(
            e.contains("server.yaml") && e.contains("unknown key `lisen`") && e.contains("listen"),
            "{e}"
        );
        let e = merged("listen: [a, b]\n", &[]).unwrap_err();
        assert!(e.contains("listen: takes one value"), "{e}");
        let e = merged("config: /x\n", &[]).unwrap_err();
        assert!(e.contains("unknown key `config`"), "{e}");
        let e = merged("listen: 1\n  bad: indent\n", &[]).unwrap_err();
        assert!(e.contains("server.yaml:"), "{e}");
    }

    #[test]
    fn an_empty_or_commented_file_sets_nothing_and_a_missing_default_is_no_error() {
        assert_eq!(merged("# all defaults\n", &[]).unwrap().len(), 2);
        let argv = vec![OsString::from("cm-server")];
        let (out, file) = merge(cmd(), argv.clone()).unwrap();
        assert_eq!((out, file), (argv, None));
        let named = vec![
            OsString::from("cm-server"),
            OsString::from("--config=/nonexistent/x.yaml"),
        ];
        let e = merge(cmd(), named).unwrap_err().to_string();
        assert!(
            e.contains("/nonexistent/x.yaml") && e.contains("cannot read"),
            "{e}"
        );
    }
}
