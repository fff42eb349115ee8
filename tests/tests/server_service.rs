//! cm-server as a systemd `Type=notify` service sees it: `READY=1` on
//! `$NOTIFY_SOCKET` once its ports listen, `STOPPING=1` on SIGTERM, and a
//! clean exit.

use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::Duration;

use cm_e2e::server_command;

/// A bound against a hang only, not a measurement.
const WAIT: Duration = Duration::from_secs(60);

fn next_state(socket: &UnixDatagram) -> String {
    let mut buf = [0; 256];
    let n = socket.recv(&mut buf).expect("a notification in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn the_server_tells_systemd_it_is_ready_once_it_listens_and_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let systemd = UnixDatagram::bind(&path).unwrap();
    systemd.set_read_timeout(Some(WAIT)).unwrap();
    let log = dir.path().join("server.log");
    let mut server = server_command()
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let ready = next_state(&systemd);
    let said = std::fs::read_to_string(&log).unwrap();
    assert_eq!(ready, "READY=1", "{said}");
    // Ready means listening: the address it says it serves on answers.
    let line = said
        .lines()
        .find(|l| l.contains("serving gRPC on"))
        .unwrap_or_else(|| panic!("{said}"));
    let addr = line.split("serving gRPC on ").nth(1).unwrap();
    let addr = addr.split(' ').next().unwrap();
    std::net::TcpStream::connect(addr).expect("the gRPC port listens");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(next_state(&systemd), "STOPPING=1");
    let status = server.wait().unwrap();
    assert!(
        status.success(),
        "{status}: {}",
        std::fs::read_to_string(&log).unwrap()
    );
}
