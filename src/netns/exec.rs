//! Running something inside a named network namespace: [`NetnsEnter`] holds an open
//! descriptor of `/run/netns/NAME` and either makes a `Command`'s child call `setns` before
//! `exec` (the child stays our direct child with its own pid: the supervisor's SIGSTOP and
//! SIGKILL reach the real process, as without namespaces) or runs a closure on a thread that
//! joined the namespace (sockets it opens live there).
//!
//! Why `setns` in `pre_exec` rather than `ip netns exec NAME prog`: both keep the pid (`ip`
//! execs the program without forking), but `ip netns exec` also unshares a mount namespace
//! and remounts `/sys`, needs `ip` at every spawn and puts `ip` in the process's first
//! command line; `setns` is one system call in the fork, composes with the process-group and
//! descriptor-closing hooks of `process::OwnedProcess`, and a missing namespace is an error
//! before anything is spawned (the descriptor is opened in the parent).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::NetnsError;

/// Where `ip netns add` mounts named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// An open handle on a named network namespace. Cloning shares the descriptor; while any clone
/// (or a `Command` it was applied to) lives, the namespace itself lives on even after `ip netns
/// del` (its veth is deleted explicitly, so nothing is reachable through it).
#[derive(Clone, Debug)]
pub struct NetnsEnter {
    name: String,
    fd: Arc<OwnedFd>,
}

impl NetnsEnter {
    /// Opens `/run/netns/NAME` (close-on-exec).
    pub fn open(name: &str) -> Result<NetnsEnter, NetnsError> {
        let path = netns_path(name);
        let file =
            File::open(&path).map_err(|source| NetnsError::Io { what: "cannot open the namespace", path, source })?;
        Ok(NetnsEnter { name: name.to_string(), fd: Arc::new(OwnedFd::from(file)) })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Makes `cmd`'s child join the namespace between fork and exec (for a tokio command,
    /// pass `as_std_mut()`; duct hands its `before_spawn` hook a std one). Register this before any
    /// `pre_exec` hook that closes inherited descriptors (`OwnedProcess` closes every
    /// descriptor from 3 up): hooks run in the order they were added.
    pub fn apply<'c>(&self, cmd: &'c mut std::process::Command) -> &'c mut std::process::Command {
        let fd = Arc::clone(&self.fd);
        // SAFETY: between fork and exec the hook only reads a descriptor number and calls
        // setns(2), which is async-signal-safe; it allocates nothing and takes no lock.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            })
        }
    }

    /// A new `Command` for `program` that runs inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut cmd = std::process::Command::new(program);
        self.apply(&mut cmd);
        cmd
    }

    /// Runs `f` on a new thread that joined the namespace and returns its result: sockets it
    /// creates belong to the namespace (and stay there when used from other threads).
    pub fn run<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        let fd = self.fd.as_raw_fd();
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns(2) with a descriptor we own; it changes only this thread.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// The namespace's identity: the inode that `/proc/PID/ns/net` of its processes names.
    pub fn inode(&self) -> io::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        let file = File::from(self.fd.try_clone()?);
        Ok(file.metadata()?.ino())
    }
}

pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// The inode of a named namespace (`None` when it does not exist).
pub fn netns_inode(name: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(netns_path(name)).ok().map(|m| m.ino())
}

/// The live processes whose network namespace has inode `inode` (`/proc/*/ns/net`).
pub fn processes_in(inode: u64) -> Vec<u32> {
    let wanted = format!("net:[{inode}]");
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut pids: Vec<u32> = procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|l| l.as_os_str() == wanted.as_str())
                && crate::os::pid_alive(*pid)
        })
        .collect();
    pids.sort_unstable();
    pids
}
