//! `cmctl userdata`: the user-data an autoscaling group's nodes boot with.
//! It writes /etc/cm/agent.yaml (server, CA pin, token) and runs
//! `cm-agent start`, which enrolls and leaves a daemon running: under
//! systemd as its unit, elsewhere detached, so cloud-init's last stage ends.

use anyhow::Result;
use cm_model::credential::Credential;
use cm_model::server_url::ServerUrl;
use tonic::transport::Channel;

use crate::commands::access::create_token;

pub struct UserData {
    pub roles: Vec<String>,
    pub env: String,
    pub token: Option<String>,
    pub ttl: u64,
    pub uses: u32,
    /// The URL as nodes reach the server.
    pub server: String,
    pub cloud: Option<String>,
    pub interval: Option<String>,
}

pub async fn userdata(channel: Channel, cred: &Credential, u: UserData) -> Result<()> {
    ServerUrl::parse(&u.server)?;
    for name in u.roles.iter().chain([&u.env]) {
        cm_model::metadata::check_name(name).map_err(|e| anyhow::anyhow!("{name:?}: {e}"))?;
    }
    let (token, note) = match u.token {
        Some(t) => (t, "a token given with --token".to_string()),
        None => {
            let t = create_token(channel, u.roles.clone(), u.env.clone(), u.ttl, u.uses).await?;
            let note = format!(
                "token {} for {} node(s), expires {}",
                t.id,
                u.uses,
                crate::output::time(t.expires_at)
            );
            eprintln!("created {note}");
            (t.token, note)
        }
    };
    print!(
        "{}",
        script(
            &u.roles,
            &u.env,
            &note,
            &u.server,
            &cred.ca_fingerprint,
            &token,
            u.cloud.as_deref(),
            u.interval.as_deref()
        )
    );
    Ok(())
}

/// The script. Settings go into a quoted heredoc, so the shell expands
/// nothing in them, each as a JSON-quoted YAML string with line breaks
/// replaced; role and environment names were checked to be plain names.
#[allow(clippy::too_many_arguments)]
pub fn script(
    roles: &[String],
    env: &str,
    note: &str,
    server: &str,
    fingerprint: &str,
    token: &str,
    cloud: Option<&str>,
    interval: Option<&str>,
) -> String {
    let mut yaml = format!(
        "server: {}\nca_fingerprint: {}\ntoken: {}\n",
        yaml_str(server),
        yaml_str(fingerprint),
        yaml_str(token)
    );
    if let Some(c) = cloud {
        yaml.push_str(&format!("cloud: {}\n", yaml_str(c)));
    }
    if let Some(i) = interval {
        yaml.push_str(&format!("interval: {}\n", yaml_str(i)));
    }
    format!(
        "#!/bin/bash
# cm node: role {roles}, environment {env} ({note}).
# Writes the agent's settings and starts it; the agent removes the token
# once it has enrolled. Its log: journalctl -u cm-agent, or
# /var/log/cm-agent.log where systemd is not PID 1.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# The cm-agent package made /etc/cm already, with its mode: keep it.
mkdir -p -m 0700 /etc/cm
# A file left from an image build keeps its mode: start from an empty 0600 one.
install -m 0600 /dev/null /etc/cm/agent.yaml
cat > /etc/cm/agent.yaml <<'CM_AGENT_YAML'
{yaml}CM_AGENT_YAML
exec cm-agent start
",
        roles = one_line(&roles.join(",")),
        env = one_line(env),
        note = one_line(note),
    )
}

/// A YAML double-quoted scalar.
fn yaml_str(s: &str) -> String {
    serde_json::to_string(&one_line(s)).unwrap_or_default()
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_writes_settings_and_starts_the_agent() {
        let s = script(
            &["memcached".into()],
            "production",
            "token t1",
            "https://cm-server:8443",
            "ab12",
            "tok$(reboot)",
            Some("none"),
            None,
        );
        assert!(s.starts_with("#!/bin/bash\n"));
        assert!(s.contains("<<'CM_AGENT_YAML'\nserver: \"https://cm-server:8443\"\n"));
        assert!(
            s.contains("token: \"tok$(reboot)\"\n"),
            "quoted heredoc: no expansion"
        );
        assert!(s.contains("cloud: \"none\"\n"));
        assert!(s.trim_end().ends_with("exec cm-agent start"));
    }

    #[test]
    fn bash_parses_the_script() {
        use std::io::Write;
        let s = script(
            &["web".into()],
            "prod",
            "n",
            "https://a:1",
            "f",
            "t'\"$x",
            None,
            Some("15m"),
        );
        let mut bash = std::process::Command::new("bash")
            .arg("-n")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("bash runs");
        bash.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        assert!(bash.wait().unwrap().success(), "{s}");
    }

    #[test]
    fn newlines_cannot_end_the_heredoc() {
        let s = script(
            &["r".into()],
            "e\nCM_AGENT_YAML\nrm -rf /",
            "n",
            "https://a:1",
            "f",
            "t\nCM_AGENT_YAML",
            None,
            None,
        );
        assert_eq!(s.matches("\nCM_AGENT_YAML\n").count(), 1, "{s}");
    }
}
