//! Golden tests of the s3sync cookbook: s3cmd's configuration from
//! secrets, the backup script (checked by shellcheck), and the cron jobs.

mod support;

use support::golden::{Inputs, rendered, resource, resources};

const ATTRIBUTES: &str = "s3sync:
  bucket: fleet-logs
  endpoint: \"127.0.0.1:5000\"
  use_https: false
  server_side_encryption: true
  syncs:
    - {name: apache-logs, dir: /var/log/apache2, minute: \"*/15\"}
  backups:
    - {name: app-db, command: \"pg_dump app | cat\", keep: 3, hour: \"2\"}
";
const SECRETS: &str = "s3sync_access_key: AKIAEXAMPLE\ns3sync_secret_key: wJalrEXAMPLEKEY\n";

fn inputs() -> Inputs<'static> {
    Inputs {
        attributes: Some(ATTRIBUTES),
        secrets: Some(SECRETS),
        ..Inputs::default()
    }
}

#[test]
fn without_a_bucket_the_recipe_does_nothing() {
    assert!(resources("s3sync", &Inputs::default()).is_empty());
}

#[test]
fn the_s3cmd_configuration_holds_the_keys_and_is_private() {
    let config = resource("s3sync", &inputs(), "/etc/s3sync/s3cfg");
    assert!(config.sensitive && config.holds_secret);
    assert_eq!(config.properties["mode"], "0600");
    insta::assert_snapshot!(String::from_utf8(config.content.unwrap()).unwrap());
}

#[test]
fn the_backup_script_is_the_one_reviewed_and_passes_shellcheck() {
    let script = rendered("s3sync", &inputs(), "/usr/local/sbin/s3sync-backup");
    insta::assert_snapshot!(script);
    if !support::require(which("shellcheck"), "shellcheck is not installed") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s3sync-backup");
    std::fs::write(&path, &script).unwrap();
    let out = std::process::Command::new("shellcheck")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn each_sync_and_backup_is_a_cron_job_with_its_schedule() {
    let sync = resource("s3sync", &inputs(), "s3sync-apache-logs");
    assert_eq!(sync.properties["minute"], "*/15");
    assert_eq!(sync.properties["hour"], "*");
    assert_eq!(
        sync.properties["command"],
        "s3cmd --config /etc/s3sync/s3cfg --no-progress --quiet sync /var/log/apache2/ \
         s3://fleet-logs/nodes/cache-1/apache-logs/"
    );
    let backup = resource("s3sync", &inputs(), "s3sync-backup-app-db");
    assert_eq!(
        (&backup.properties["minute"], &backup.properties["hour"]),
        (&"0".into(), &"2".into())
    );
    assert_eq!(
        backup.properties["command"],
        "/usr/local/sbin/s3sync-backup app-db 3 'pg_dump app | cat'"
    );
}

fn which(program: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}
