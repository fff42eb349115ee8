//! Agents for the end-to-end tests: the real cm-agent binary with its own
//! settings file, state dir and lock in a temp dir, and a small cookbook
//! whose paths come from attributes, so several agents share one machine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{TestServer, bin};

/// One node's agent.
pub struct TestAgent {
    pub dir: tempfile::TempDir,
    pub name: String,
}

/// A finished `cm-agent run --once --format json`.
pub struct RunOnce {
    pub status: ExitStatus,
    pub json: serde_json::Value,
    pub stderr: String,
}

impl TestAgent {
    /// Settings for `server` with `token`; `cloud: none`, splay 0, a long interval.
    pub fn new(server: &TestServer, name: &str, token: &str) -> TestAgent {
        let fingerprint = server.running.state.pki.ca().fingerprint();
        TestAgent::with_settings(
            name,
            &format!(
                "server: {}\nca_fingerprint: {fingerprint}\ntoken: {token}\n",
                server.url()
            ),
        )
    }

    /// An agent whose agent.yaml starts with `settings`.
    pub fn with_settings(name: &str, settings: &str) -> TestAgent {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = format!(
            "{settings}name: {name}\ncloud: none\ninterval: 1h\nsplay: 0\nstate_dir: {}\nbackup_dir: {}\n",
            dir.path().join("state").display(),
            dir.path().join("backup").display(),
        );
        std::fs::write(dir.path().join("agent.yaml"), text).expect("agent.yaml");
        TestAgent {
            dir,
            name: name.to_string(),
        }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("agent.yaml")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Where this agent's demo cookbook writes.
    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// `cm-agent ARGS --config ...` with this agent's lock file.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("cm-agent"));
        c.args(args)
            .arg("--config")
            .arg(self.config())
            .env("CM_LOCK_FILE", self.dir.path().join("lock"))
            .env("NO_COLOR", "1")
            .env_remove("CM_LOG");
        c
    }

    pub async fn run_once(&self) -> RunOnce {
        let mut c = self.command(&["run", "--once", "--format", "json"]);
        let out = tokio::task::spawn_blocking(move || c.output().expect("cm-agent runs"))
            .await
            .expect("the run finishes");
        RunOnce {
            status: out.status,
            json: serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `cm-agent daemon` with info logs in `daemon-N.log`, one per daemon started.
    pub fn spawn_daemon(&self) -> Daemon {
        let n = (0..)
            .find(|n| !self.dir.path().join(format!("daemon-{n}.log")).exists())
            .unwrap_or_default();
        let log = self.dir.path().join(format!("daemon-{n}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = self
            .command(&["daemon"])
            .env("CM_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("the daemon starts");
        Daemon { child, log }
    }
}

/// A running daemon, killed on drop.
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the log holds `needle` `count` times; false after `timeout`.
    pub async fn wait_for_log(&self, needle: &str, count: usize, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.log_text().matches(needle).count() >= count {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// [`Daemon::wait_for_log`], failing the test with the log if it never comes.
    pub async fn expect_log(&self, needle: &str, count: usize, timeout: Duration) {
        assert!(
            self.wait_for_log(needle, count, timeout).await,
            "{needle:?} did not appear {count} time(s) within {timeout:?}:\n{}",
            self.log_text()
        );
    }

    /// SIGTERM, then the exit status.
    pub async fn stop(self) -> ExitStatus {
        self.terminate();
        self.exit_status().await
    }

    /// Send SIGTERM (once: a second one means "now").
    pub fn terminate(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    }

    /// Wait for the daemon to exit by itself.
    pub async fn exit_status(mut self) -> ExitStatus {
        let mut child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        tokio::task::spawn_blocking(move || child.wait().expect("the daemon exits"))
            .await
            .expect("waited")
    }

    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server with the demo cookbook, an unpinned production environment
/// without splay, and one role per agent name, each writing into that
/// agent's own dir. The temp dir holds the cookbook and environment files.
pub async fn fleet(names: &[&str]) -> (TestServer, Vec<TestAgent>, tempfile::TempDir) {
    let server = TestServer::start().await;
    let books = tempfile::tempdir().expect("temp dir");
    let demo = demo_cookbook(books.path(), "1.0.0");
    cmctl(
        &server,
        &["push", "cookbook", demo.to_str().expect("utf-8")],
    )
    .await;
    set_environment(
        &server,
        books.path(),
        "name: production\nsplay_seconds: 0\n",
    )
    .await;
    let mut agents = Vec::new();
    for name in names {
        let token = server.token(&format!("role-{name}"), 1).await;
        let agent = TestAgent::new(&server, name, &token);
        set_role(
            &server,
            &demo_role(&format!("role-{name}"), &agent.out(), "hello"),
        )
        .await;
        agents.push(agent);
    }
    (server, agents, books)
}

/// `cmctl env set` from text, through a file in `dir`.
pub async fn set_environment(server: &TestServer, dir: &Path, yaml: &str) {
    let env = dir.join("environment.yaml");
    std::fs::write(&env, yaml).expect("environment file");
    cmctl(server, &["env", "set", env.to_str().expect("utf-8")]).await;
}

/// The text of `path`, failing the test with the path if it cannot be read.
pub fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Write the `demo` cookbook (version `version`) under `dir` and return its path.
/// It writes `message` and `node.conf` under `attrs.demo.dir`.
pub fn demo_cookbook(dir: &Path, version: &str) -> PathBuf {
    let root = dir.join(format!("demo-{version}"));
    let files = [
        (
            "metadata.yaml",
            format!("name: demo\nversion: {version}\ndescription: test cookbook\n"),
        ),
        (
            "attributes.yaml",
            "demo:\n  dir: /nonexistent\n  message: hello\n".to_string(),
        ),
        (
            "recipes/default.yaml",
            "- directory: \"{{attrs.demo.dir}}\"\n\
             - file: \"{{attrs.demo.dir}}/message\"\n  content: \"{{attrs.demo.message}}\\n\"\n\
             - template: \"{{attrs.demo.dir}}/node.conf\"\n  source: node.conf.hbs\n"
                .to_string(),
        ),
        (
            "templates/node.conf.hbs",
            format!("cookbook {version}, role {{{{attrs.demo.message}}}}\n"),
        ),
    ];
    for (rel, text) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    root
}

/// A role YAML running `demo` with its output in `out` and `message`.
pub fn demo_role(name: &str, out: &Path, message: &str) -> String {
    format!(
        "name: {name}\nrun_list: [demo]\nattributes:\n  demo:\n    dir: {}\n    message: {message}\n",
        out.display()
    )
}

/// cmctl as the bootstrap admin, without colour, not started yet.
pub fn cmctl_command(server: &TestServer) -> Command {
    let mut c = Command::new(bin("cmctl"));
    c.arg("--credential")
        .arg(&server.credential)
        .env("NO_COLOR", "1");
    c
}

/// Run cmctl as the bootstrap admin; returns stdout, panics with stderr on failure.
pub async fn cmctl(server: &TestServer, args: &[&str]) -> String {
    let out = cmctl_output(server, args).await;
    assert!(
        out.status.success(),
        "cmctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run cmctl as an admin, expecting it to fail with status 1; its stderr.
pub async fn cmctl_refused(server: &TestServer, args: &[&str]) -> String {
    let out = cmctl_output(server, args).await;
    assert_eq!(out.status.code(), Some(1), "cmctl {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn cmctl_output(server: &TestServer, args: &[&str]) -> std::process::Output {
    let mut c = cmctl_command(server);
    c.args(args);
    tokio::task::spawn_blocking(move || c.output().expect("cmctl runs"))
        .await
        .expect("cmctl finishes")
}

/// `cmctl role set` from text.
pub async fn set_role(server: &TestServer, yaml: &str) {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), yaml).expect("role file");
    cmctl(
        server,
        &["role", "set", file.path().to_str().expect("utf-8")],
    )
    .await;
}

/// `cmctl node list`'s JSON entry for `name`, once plans have settled.
pub async fn node_listed(server: &TestServer, name: &str) -> serde_json::Value {
    server.running.state.recompute.settled().await;
    let list: serde_json::Value =
        serde_json::from_str(&cmctl(server, &["--format", "json", "node", "list"]).await).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} is not listed: {list}"))
}
