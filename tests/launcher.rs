//! The launcher and `chronik-chaos toxiproxy start|status|reset|stop` as a user runs them:
//! start/stop leaves no process, a foreign listener is refused with a clear error, a stale
//! state file is detected and cleaned, SIGINT stops `serve` cleanly. Uses the embedded server
//! (no real toxiproxy-server is needed).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use chronik_chaos::os;
use chronik_chaos::toxiproxy::launcher::{self, LaunchConfig, ServerChoice, ServerKind, ServerState, StateDir};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_chronik-chaos")
}

/// Runs `chronik-chaos toxiproxy <args> --state-dir <dir>` with no real server to be found.
fn toxiproxy(dir: &Path, args: &[&str]) -> Output {
    toxiproxy_via(dir, args, None)
}

/// [`toxiproxy`] as `cargo xtask` runs it: `invoked_as` is the user's command, which xtask
/// puts in `CHRONIK_CHAOS_INVOKED_AS`.
fn toxiproxy_via(dir: &Path, args: &[&str], invoked_as: Option<&str>) -> Output {
    let mut cmd = Command::new(bin());
    cmd.arg("toxiproxy").args(args).arg("--state-dir").arg(dir);
    support::as_invoked(&mut cmd, invoked_as)
}

use support::text;

fn recorded_pid(dir: &Path) -> u32 {
    let state: ServerState = serde_json::from_slice(&std::fs::read(dir.join("toxiproxy.json")).unwrap()).unwrap();
    state.pid
}

#[test]
fn start_status_reset_stop_leaves_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let listen = support::free_addr().to_string();
    let out = toxiproxy(dir.path(), &["start", "--listen", &listen]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("toxiproxy started: embedded server"), "{}", text(&out));
    assert!(text(&out).contains(&format!("http://{listen}")), "{}", text(&out));
    let pid = recorded_pid(dir.path());
    assert!(os::pid_alive(pid));

    // Starting again is idempotent.
    let again = toxiproxy(dir.path(), &["start", "--listen", &listen]);
    assert!(again.status.success() && text(&again).contains("already running"), "{}", text(&again));
    assert_eq!(recorded_pid(dir.path()), pid);

    let status = toxiproxy(dir.path(), &["status"]);
    assert!(status.status.success(), "{}", text(&status));
    assert!(text(&status).contains("toxiproxy: running — embedded server"), "{}", text(&status));

    let reset = toxiproxy(dir.path(), &["reset"]);
    assert!(reset.status.success() && text(&reset).contains("removed 0 toxics"), "{}", text(&reset));

    let stop = toxiproxy(dir.path(), &["stop"]);
    assert!(stop.status.success(), "{}", text(&stop));
    assert!(text(&stop).contains("after SIGTERM"), "{}", text(&stop));
    assert!(!os::pid_alive(pid), "pid {pid} still runs after stop");
    assert!(os::group_members(pid).is_empty());
    assert!(!dir.path().join("toxiproxy.json").exists());
    assert_eq!(os::port_holder(listen.parse().unwrap()), None, "port {listen} still held");

    let status = toxiproxy(dir.path(), &["status"]);
    assert!(text(&status).contains("not running"), "{}", text(&status));
}

#[test]
fn a_foreign_listener_is_named_and_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = foreign.local_addr().unwrap().to_string();
    let out = toxiproxy(dir.path(), &["start", "--listen", &addr]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let msg = text(&out);
    assert!(msg.contains(&format!("cannot start toxiproxy on {addr}: the port is taken")), "{msg}");
    assert!(msg.contains(&format!("pid {}", std::process::id())), "the holder must be named: {msg}");
    assert!(msg.contains("stop that process or pass `--listen ADDR`"), "{msg}");
    assert!(!dir.path().join("toxiproxy.json").exists(), "nothing recorded for a failed start");
    // Through `cargo xtask toxiproxy start`, the hint is that command's flag.
    let via = toxiproxy_via(dir.path(), &["start", "--listen", &addr], Some("cargo xtask toxiproxy"));
    assert_eq!(via.status.code(), Some(2), "{}", text(&via));
    assert!(
        text(&via).contains("stop that process or pass `cargo xtask toxiproxy start --listen ADDR`"),
        "{}",
        text(&via)
    );
    // The foreign listener is untouched.
    assert!(std::net::TcpStream::connect(&addr).is_ok());
}

/// A pid that certainly belongs to no live process: a child that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = Command::new("/bin/true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn write_stale_state(dir: &Path) -> u32 {
    let pid = dead_pid();
    let state = ServerState {
        pid,
        start_ticks: 1,
        api: support::free_addr(),
        server: ServerKind::Embedded { version: "old".into() },
        log: dir.join("toxiproxy.log"),
        started_at: "2026-01-01T00:00:00Z".into(),
    };
    StateDir::new(dir).save(&state).unwrap();
    pid
}

#[test]
fn a_stale_state_file_is_detected_and_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let pid = write_stale_state(dir.path());
    let status = toxiproxy(dir.path(), &["status"]);
    assert!(text(&status).contains(&format!("stale state: pid {pid}")), "{}", text(&status));
    assert!(!dir.path().join("toxiproxy.json").exists());

    write_stale_state(dir.path());
    let stop = toxiproxy(dir.path(), &["stop"]);
    assert!(stop.status.success() && text(&stop).contains("already gone"), "{}", text(&stop));

    write_stale_state(dir.path());
    let listen = support::free_addr().to_string();
    let start = toxiproxy(dir.path(), &["start", "--listen", &listen]);
    assert!(start.status.success(), "{}", text(&start));
    assert!(text(&start).contains("cleaned a stale state file"), "{}", text(&start));
    let pid = recorded_pid(dir.path());
    assert!(toxiproxy(dir.path(), &["stop"]).status.success());
    assert!(!os::pid_alive(pid));
}

#[test]
fn a_second_server_from_the_same_state_dir_is_refused_with_what_applies() {
    let dir = tempfile::tempdir().unwrap();
    let first = support::free_addr().to_string();
    let out = toxiproxy(dir.path(), &["start", "--listen", &first]);
    assert!(out.status.success(), "{}", text(&out));
    let pid = recorded_pid(dir.path());
    let second = support::free_addr().to_string();
    let direct = toxiproxy(dir.path(), &["start", "--listen", &second]);
    let via = toxiproxy_via(dir.path(), &["start", "--listen", &second], Some("cargo xtask toxiproxy"));
    assert!(toxiproxy(dir.path(), &["stop"]).status.success());
    assert!(!os::pid_alive(pid));

    assert_eq!(direct.status.code(), Some(2), "{}", text(&direct));
    let d = text(&direct);
    let running = format!("already runs at http://{first} (pid {pid}); stop it first with ");
    assert!(d.contains(&running), "{d}");
    let binary_stop =
        format!("`chronik-chaos toxiproxy stop --state-dir {}` or pass another --state-dir", dir.path().display());
    assert!(d.contains(&binary_stop), "{d}");
    // xtask has no --state-dir (its state is fixed under target/chronik-chaos): only `stop` applies.
    assert_eq!(via.status.code(), Some(2), "{}", text(&via));
    let v = text(&via);
    assert!(v.contains(&format!("{running}`cargo xtask toxiproxy stop`")), "{v}");
    assert!(!v.contains("--state-dir"), "{v}");
}

#[test]
fn a_named_binary_that_is_missing_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["toxiproxy", "start", "--listen", &support::free_addr().to_string(), "--state-dir"])
        .arg(dir.path())
        .env("TOXIPROXY_BIN", "/nonexistent/toxiproxy-server")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("TOXIPROXY_BIN names /nonexistent/toxiproxy-server"), "{}", text(&out));
}

#[test]
fn sigint_stops_serve_cleanly() {
    let listen = support::free_addr();
    let mut child = Command::new(bin())
        .args(["toxiproxy", "serve", "--listen", &listen.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(listen).is_err() {
        assert!(Instant::now() < deadline, "serve never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(os::port_holder(listen), None);
}

#[tokio::test]
async fn an_owned_server_is_stopped_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LaunchConfig {
        listen: support::free_addr(),
        choice: ServerChoice::Embedded,
        embedded_exe: PathBuf::from(bin()),
        log: dir.path().join("toxiproxy.log"),
        ready_timeout: Duration::from_secs(15),
    };
    let launched = launcher::launch(&cfg).await.unwrap();
    let pid = launched.pid();
    assert!(matches!(launched.kind, ServerKind::Embedded { .. }));
    assert!(!launched.client().version().await.unwrap().is_empty());
    drop(launched);
    assert!(!os::pid_alive(pid), "dropping the owner must stop the server");
    assert_eq!(os::port_holder(cfg.listen), None);
}
