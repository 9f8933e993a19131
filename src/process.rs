//! Ownership of long-lived child processes (Toxiproxy, Chronik nodes): each runs in its own
//! process group with output to a log file, and its owner ends the whole group — SIGTERM, a
//! grace period, then SIGKILL — on request, on drop (error, panic) and on Ctrl-C.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How an owned process ended when we asked it to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Termination {
    /// It had already exited (or crashed) before we asked.
    AlreadyExited(Option<ExitStatus>),
    /// It exited within the grace period after SIGTERM.
    Graceful { status: Option<ExitStatus>, after: Duration },
    /// It ignored SIGTERM for the whole grace period and was killed with SIGKILL.
    Killed { grace: Duration },
}

impl Termination {
    /// True when the process ignored SIGTERM past the grace period — a finding to report.
    pub fn ignored_sigterm(&self) -> bool {
        matches!(self, Termination::Killed { .. })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot open log file {path}: {source}")]
    Log { path: PathBuf, source: std::io::Error },
    #[error("cannot start {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
}

/// Where and with what environment a process runs, beyond program and arguments.
#[derive(Clone, Debug, Default)]
pub struct SpawnOptions {
    /// Working directory (default: ours).
    pub cwd: Option<PathBuf>,
    /// Variables of our environment the child must not inherit.
    pub env_remove: Vec<String>,
    /// The network namespace the child joins between fork and exec (`--network netns`).
    pub netns: Option<crate::netns::NetnsEnter>,
}

/// A child process we own. Dropping it ends its whole process group.
pub struct OwnedProcess {
    name: String,
    handle: Option<duct::Handle>,
    pid: u32,
    log: PathBuf,
    /// Grace period between SIGTERM and SIGKILL.
    grace: Duration,
}

impl OwnedProcess {
    /// Starts `program args` in a new process group, stdin from /dev/null, stdout and stderr
    /// appended to `log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[OsString],
        envs: &[(String, String)],
        log: &Path,
    ) -> Result<OwnedProcess, ProcessError> {
        OwnedProcess::spawn_with(name, program, args, envs, log, &SpawnOptions::default())
    }

    /// [`OwnedProcess::spawn`] with a working directory and environment variables to remove.
    pub fn spawn_with(
        name: &str,
        program: &Path,
        args: &[OsString],
        envs: &[(String, String)],
        log: &Path,
        options: &SpawnOptions,
    ) -> Result<OwnedProcess, ProcessError> {
        if let Some(dir) = log.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| ProcessError::Log { path: log.to_path_buf(), source })?;
        let err_file = file.try_clone().map_err(|source| ProcessError::Log { path: log.to_path_buf(), source })?;
        let netns = options.netns.clone();
        let mut expr =
            duct::cmd(program, args).stdin_null().stdout_file(file).stderr_file(err_file).unchecked().before_spawn(
                move |cmd| {
                    cmd.process_group(0);
                    // Joining the namespace needs its descriptor: before the hook below
                    // closes every inherited one (hooks run in the order they were added).
                    if let Some(netns) = &netns {
                        netns.apply(cmd);
                    }
                    // SAFETY: close_range is async-signal-safe; it only closes descriptors
                    // inherited from us (pipes of whoever ran us, a jobserver), so a
                    // long-lived server holds nothing but its stdio and its log.
                    unsafe {
                        cmd.pre_exec(|| {
                            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                            Ok(())
                        });
                    }
                    Ok(())
                },
            );
        for k in &options.env_remove {
            expr = expr.env_remove(k);
        }
        for (k, v) in envs {
            expr = expr.env(k, v);
        }
        if let Some(dir) = &options.cwd {
            expr = expr.dir(dir);
        }
        let handle =
            expr.start().map_err(|source| ProcessError::Spawn { program: program.display().to_string(), source })?;
        let pid = handle.pids()[0];
        Ok(OwnedProcess {
            name: name.to_string(),
            handle: Some(handle),
            pid,
            log: log.to_path_buf(),
            grace: Duration::from_secs(10),
        })
    }

    pub fn with_grace(mut self, grace: Duration) -> OwnedProcess {
        self.grace = grace;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// `Some(status)` once the process has exited (reaps it); `None` while it runs.
    pub fn try_exit(&self) -> Option<Option<ExitStatus>> {
        let handle = self.handle.as_ref()?;
        match handle.try_wait() {
            Ok(Some(out)) => Some(Some(out.status)),
            Ok(None) => None,
            Err(_) => Some(None),
        }
    }

    /// Sends `sig` to the whole process group (no-op once the leader has been reaped and the
    /// group is empty).
    pub fn signal(&self, sig: Signal) -> nix::Result<()> {
        signal_group(self.pid, sig)
    }

    /// SIGTERM, wait up to the grace period, then SIGKILL; always leaves the group empty.
    pub fn terminate(&mut self) -> Termination {
        let Some(handle) = self.handle.take() else { return Termination::AlreadyExited(None) };
        if let Ok(Some(out)) = handle.try_wait() {
            let _ = signal_group(self.pid, Signal::SIGKILL);
            return Termination::AlreadyExited(Some(out.status));
        }
        let started = Instant::now();
        let _ = signal_group(self.pid, Signal::SIGTERM);
        // A stopped process cannot act on SIGTERM.
        let _ = signal_group(self.pid, Signal::SIGCONT);
        while started.elapsed() < self.grace {
            if let Ok(Some(out)) = handle.try_wait() {
                let status = out.status;
                let _ = signal_group(self.pid, Signal::SIGKILL);
                return Termination::Graceful { status: Some(status), after: started.elapsed() };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = signal_group(self.pid, Signal::SIGKILL);
        let _ = handle.wait();
        Termination::Killed { grace: self.grace }
    }

    /// SIGKILL to the group and reap, at once (a crash, as a scenario wants it).
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let handle = self.handle.take()?;
        let _ = signal_group(self.pid, Signal::SIGKILL);
        handle.wait().ok().map(|o| o.status)
    }

    /// Leaves the process running without an owner in this process (a server started by
    /// `toxiproxy start`, whose state file then owns it). Returns its pid.
    pub fn detach(mut self) -> u32 {
        self.handle = None;
        self.pid
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }
}

impl Drop for OwnedProcess {
    fn drop(&mut self) {
        if self.handle.is_some() {
            self.terminate();
        }
    }
}

/// Sends `sig` to process group `pgid`; a group that no longer exists is not an error.
pub fn signal_group(pgid: u32, sig: Signal) -> nix::Result<()> {
    match killpg(Pid::from_raw(pgid as i32), sig) {
        Err(nix::errno::Errno::ESRCH) => Ok(()),
        other => other,
    }
}

/// What a short-lived command printed (stdout and stderr, interleaved) and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BriefRun {
    /// `None` when it was killed for running past the time limit.
    pub status: Option<ExitStatus>,
    pub output: String,
}

/// Runs `program args` to completion in its own process group with stdin from /dev/null and
/// `NO_COLOR=1`; past `limit` the whole group is killed (`status` is then `None`).
pub fn run_briefly(program: &Path, args: &[&str], limit: Duration) -> Result<BriefRun, ProcessError> {
    let handle = duct::cmd(program, args)
        .env("NO_COLOR", "1")
        .stdin_null()
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .before_spawn(|cmd| {
            cmd.process_group(0);
            Ok(())
        })
        .start()
        .map_err(|source| ProcessError::Spawn { program: program.display().to_string(), source })?;
    let pgid = handle.pids()[0];
    let started = Instant::now();
    let timed_out = loop {
        match handle.try_wait() {
            Ok(Some(_)) | Err(_) => break false,
            Ok(None) if started.elapsed() >= limit => break true,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    if timed_out {
        let _ = signal_group(pgid, Signal::SIGKILL);
    }
    let out = handle.wait().map_err(|source| ProcessError::Spawn { program: program.display().to_string(), source })?;
    Ok(BriefRun {
        status: if timed_out { None } else { Some(out.status) },
        output: String::from_utf8_lossy(&out.stdout).into_owned(),
    })
}

/// Ends a process we are not the parent of (one recorded in a state file): SIGTERM to its
/// group, wait up to `grace` for it to go, then SIGKILL.
pub fn terminate_unowned(pid: u32, grace: Duration) -> Termination {
    if !crate::os::pid_alive(pid) {
        let _ = signal_group(pid, Signal::SIGKILL);
        return Termination::AlreadyExited(None);
    }
    let started = Instant::now();
    let _ = signal_group(pid, Signal::SIGTERM);
    let _ = signal_group(pid, Signal::SIGCONT);
    while started.elapsed() < grace {
        if !crate::os::pid_alive(pid) {
            let _ = signal_group(pid, Signal::SIGKILL);
            return Termination::Graceful { status: None, after: started.elapsed() };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = signal_group(pid, Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while crate::os::pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    Termination::Killed { grace }
}

/// The last `lines` lines of a log file (reads at most the last 64 KiB).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else { return format!("(no log at {})", path.display()) };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    let _ = f.seek(SeekFrom::Start(start));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = strip_ansi(&String::from_utf8_lossy(&buf));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Removes terminal colour codes (`ESC [ ... letter`), which node logs are full of.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Describes an exit status for humans: `exit code 3`, `killed by SIGKILL`.
pub fn describe_exit(status: Option<ExitStatus>) -> String {
    match status {
        None => "exit status unknown".to_string(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(sig)) => match Signal::try_from(sig) {
                Ok(sig) => format!("killed by {sig}"),
                Err(_) => format!("killed by signal {sig}"),
            },
            _ => "exit status unknown".to_string(),
        },
    }
}
