//! The run state files under [`STATE_DIR`](super::STATE_DIR): one `<run>.json` per live run
//! (owner pid and start time, subnet, node namespaces with their inodes), written before the
//! run creates anything and removed after everything is gone, and the lock that makes choosing
//! a run name and subnet, and sweeping, one at a time across processes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::NetnsError;

/// What a run records about itself.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunState {
    pub version: u32,
    /// The run prefix (`cc1a2b`).
    pub run: String,
    /// The process that owns the run, and its start time in clock ticks since boot: a sweep
    /// treats the run as live while that very process runs.
    pub pid: u32,
    pub start_ticks: u64,
    /// `10.a.b.0/24`.
    pub subnet: String,
    /// Node namespaces made so far, with the inode that names them in `/proc/PID/ns/net`.
    #[serde(default)]
    pub namespaces: Vec<NamespaceRecord>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NamespaceRecord {
    pub name: String,
    pub inode: u64,
}

impl RunState {
    /// Whether the recorded owner still runs (same pid and same start time).
    pub fn owner_alive(&self) -> bool {
        crate::os::pid_alive(self.pid) && crate::os::start_ticks(self.pid) == Some(self.start_ticks)
    }
}

/// The directory of state files.
#[derive(Clone, Debug)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    pub fn new(path: impl Into<PathBuf>) -> StateDir {
        StateDir { path: path.into() }
    }

    pub fn default_dir() -> StateDir {
        StateDir::new(super::STATE_DIR)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file_of(&self, run: &str) -> PathBuf {
        self.path.join(format!("{run}.json"))
    }

    fn ensure(&self) -> Result<(), NetnsError> {
        std::fs::create_dir_all(&self.path).map_err(|source| NetnsError::Io {
            what: "cannot create the state directory",
            path: self.path.clone(),
            source,
        })
    }

    /// Takes the cross-process lock (released on drop).
    pub fn lock(&self) -> Result<Flock<File>, NetnsError> {
        self.ensure()?;
        let path = self.path.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| NetnsError::Io { what: "cannot open the lock file", path: path.clone(), source })?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| NetnsError::Io {
            what: "cannot lock",
            path,
            source: std::io::Error::from(errno),
        })
    }

    /// Creates `<run>.json`; fails when it exists already (the name is then taken).
    pub fn create(&self, state: &RunState) -> Result<bool, NetnsError> {
        self.ensure()?;
        let path = self.file_of(&state.run);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                let text = serde_json::to_vec_pretty(state).expect("a run state serialises");
                f.write_all(&text).and_then(|()| f.sync_all()).map_err(|source| NetnsError::Io {
                    what: "cannot write",
                    path,
                    source,
                })?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(source) => Err(NetnsError::Io { what: "cannot create", path, source }),
        }
    }

    /// Replaces `<run>.json` (write to a temporary file, then rename).
    pub fn write(&self, state: &RunState) -> Result<(), NetnsError> {
        let path = self.file_of(&state.run);
        let tmp = self.path.join(format!(".{}.json.tmp", state.run));
        let text = serde_json::to_vec_pretty(state).expect("a run state serialises");
        std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path)).map_err(|source| NetnsError::Io {
            what: "cannot write",
            path,
            source,
        })
    }

    pub fn read(&self, run: &str) -> Option<RunState> {
        let text = std::fs::read_to_string(self.file_of(run)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn remove(&self, run: &str) -> Result<(), NetnsError> {
        let path = self.file_of(run);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(NetnsError::Io { what: "cannot remove", path, source }),
        }
    }

    /// The runs that have a state file (`<run>.json`), whatever their prefix.
    pub fn runs(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(&self.path) else { return Vec::new() };
        let mut runs: Vec<String> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_string))
            .filter(|r| !r.starts_with('.'))
            .collect();
        runs.sort();
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_file_is_created_once_read_back_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let states = StateDir::new(dir.path().join("netns"));
        let me = std::process::id();
        let state = RunState {
            version: 1,
            run: "cc00ff".into(),
            pid: me,
            start_ticks: crate::os::start_ticks(me).unwrap(),
            subnet: "10.200.1.0/24".into(),
            namespaces: vec![],
        };
        let _lock = states.lock().unwrap();
        assert!(states.create(&state).unwrap());
        assert!(!states.create(&state).unwrap(), "a second create of the same run is refused");
        let mut more = state.clone();
        more.namespaces.push(NamespaceRecord { name: "cc00ff-n1".into(), inode: 42 });
        states.write(&more).unwrap();
        assert_eq!(states.read("cc00ff"), Some(more.clone()));
        assert!(more.owner_alive());
        assert_eq!(states.runs(), ["cc00ff"]);
        let dead = RunState { start_ticks: more.start_ticks + 1, ..more };
        assert!(!dead.owner_alive(), "a reused pid with another start time is not the owner");
        states.remove("cc00ff").unwrap();
        states.remove("cc00ff").unwrap();
        assert!(states.runs().is_empty());
    }
}
