//! Process ownership: a whole process group ends on terminate and on drop, a process that
//! ignores SIGTERM is killed after the grace period and reported, grandchildren included.
//! Uses `sh` and `sleep` as stand-ins for a server process.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use chronik_chaos::os;
use chronik_chaos::process::{OwnedProcess, Termination};

fn spawn_sh(script: &str, log: &Path) -> OwnedProcess {
    let args: Vec<OsString> = vec!["-c".into(), script.into()];
    OwnedProcess::spawn("stand-in", Path::new("/bin/sh"), &args, &[], log).unwrap()
}

/// Waits until the group has `n` members (the shell and its `sleep`).
fn wait_members(pgid: u32, n: usize) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = os::group_members(pgid);
        if m.len() >= n {
            return m;
        }
        assert!(Instant::now() < deadline, "group {pgid} never reached {n} members: {m:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_ignored_past_grace_is_killed_with_its_children_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn_sh("trap '' TERM; echo started; sleep 60 & wait", &dir.path().join("log"))
        .with_grace(Duration::from_millis(300));
    let pgid = p.pid();
    let members = wait_members(pgid, 2);
    let how = p.terminate();
    assert!(matches!(how, Termination::Killed { .. }), "{how:?}");
    assert!(how.ignored_sigterm());
    assert!(os::group_members(pgid).is_empty(), "left behind: {:?}", os::group_members(pgid));
    for pid in members {
        assert!(!os::pid_alive(pid), "pid {pid} survived");
    }
    assert!(p.log_tail(5).contains("started"), "stdout goes to the log");
}

#[test]
fn graceful_exit_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn_sh("sleep 60 & wait", &dir.path().join("log"));
    let pgid = p.pid();
    wait_members(pgid, 2);
    let how = p.terminate();
    assert!(matches!(how, Termination::Graceful { .. }), "{how:?}");
    assert!(os::group_members(pgid).is_empty());
}

#[test]
fn drop_ends_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let p = spawn_sh("sleep 60 & wait", &dir.path().join("log"));
    let pgid = p.pid();
    let members = wait_members(pgid, 2);
    drop(p);
    assert!(os::group_members(pgid).is_empty());
    assert!(members.iter().all(|pid| !os::pid_alive(*pid)));
}

#[test]
fn a_crash_is_seen_with_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn_sh("echo dying; exit 3", &dir.path().join("log"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = p.try_exit() {
            break status;
        }
        assert!(Instant::now() < deadline, "never exited");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(chronik_chaos::process::describe_exit(status), "exit code 3");
    assert!(matches!(p.terminate(), Termination::AlreadyExited(_)));
    assert!(p.log_tail(3).contains("dying"));
}

#[test]
fn kill_is_immediate_and_reports_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn_sh("trap '' TERM; sleep 60", &dir.path().join("log"));
    let status = p.kill();
    assert_eq!(chronik_chaos::process::describe_exit(status), "killed by SIGKILL");
}
