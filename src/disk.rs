//! A full disk on one node (`kind = "disk-full"`): for a scenario that fills one, every node's
//! data directory is a size-limited tmpfs, mounted before the nodes start and unmounted when the
//! cluster goes, whatever way it goes ([`DataMounts`] is their one owner). Inject fills the
//! target's with a filler file until the kernel says ENOSPC; heal deletes it. The proof is the
//! space the kernel reports for the mount (statfs), read during the hold and after heal. A real
//! disk is never filled: only a mount this module made is.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use crate::cluster::Cluster;
use crate::proof::Measured;

/// The size of each node's data directory: Chronik keeps a few hundred KB there in a scenario
/// (its logs are outside it).
pub const DATA_DIR_LIMIT: u64 = 64 * 1024 * 1024;

/// The file that fills a data directory (Chronik and the stand-in ignore plain files there).
pub const FILLER: &str = "chronik-chaos-filler";

/// A data directory counts as full with less than this available.
pub const FULL_BELOW: u64 = 1024 * 1024;

/// What the log lines of a node that met a full disk contain.
const NO_SPACE_WORDS: &[&str] = &["No space left on device", "os error 28", "StorageFull"];

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("cannot mount a {} tmpfs on {}: {source}", bytes(*.size), .path.display())]
    Mount { path: PathBuf, size: u64, source: nix::Error },
    #[error("cannot prepare {}: {source}", .path.display())]
    Dir { path: PathBuf, source: io::Error },
}

/// Why a scenario with a full disk cannot run here (it is N/A).
pub fn not_available(detail: &str) -> String {
    format!("disk-full needs root to mount a size-limited tmpfs; not available here ({detail})")
}

/// A tmpfs this process mounted; unmounted when dropped.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
    size: u64,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` bytes on `path` (created if missing).
    pub fn mount(path: &Path, size: u64) -> Result<Tmpfs, DiskError> {
        std::fs::create_dir_all(path).map_err(|source| DiskError::Dir { path: path.to_path_buf(), source })?;
        nix::mount::mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(format!("size={size},mode=0755").as_str()),
        )
        .map_err(|source| DiskError::Mount { path: path.to_path_buf(), size, source })?;
        Ok(Tmpfs { path: path.to_path_buf(), size })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // A process still holding a file there keeps a plain unmount from working: detach then.
        let plain = nix::mount::umount2(&self.path, MntFlags::empty());
        if plain.is_err() {
            if let Err(e) = nix::mount::umount2(&self.path, MntFlags::MNT_DETACH) {
                eprintln!("chronik-chaos: could not unmount the tmpfs on {}: {e}", self.path.display());
            }
        }
    }
}

/// Every node's data directory on its own tmpfs, unmounted together when dropped (after the
/// nodes: the cluster declares it after its supervisor).
#[derive(Debug, Default)]
pub struct DataMounts {
    mounts: Vec<(u8, Tmpfs)>,
}

impl DataMounts {
    /// Mounts a tmpfs of `size` on each `(node, data dir)`; on a failure the ones already
    /// mounted are unmounted again.
    pub fn mount_all(dirs: &[(u8, PathBuf)], size: u64) -> Result<DataMounts, DiskError> {
        let mut out = DataMounts::default();
        for (id, dir) in dirs {
            out.mounts.push((*id, Tmpfs::mount(dir, size)?));
        }
        Ok(out)
    }

    /// Node `id`'s mount.
    pub fn of(&self, id: u8) -> Option<&Tmpfs> {
        self.mounts.iter().find(|(n, _)| *n == id).map(|(_, m)| m)
    }
}

/// Whether this process may mount a tmpfs: mounts a small one under `scratch` and unmounts it.
/// `Err`: the N/A reason.
pub fn check_mountable(scratch: &Path) -> Result<(), String> {
    let dir = scratch.join(format!(".chronik-chaos-mount-check-{}", std::process::id()));
    let result = availability(Tmpfs::mount(&dir, 1024 * 1024));
    let _ = std::fs::remove_dir(&dir);
    result
}

/// A trial mount's outcome as the N/A decision: refused for lack of privilege (or anything
/// else) is "not available here", with the kernel's words.
pub fn availability(trial: Result<Tmpfs, DiskError>) -> Result<(), String> {
    match trial {
        Ok(m) => {
            drop(m);
            Ok(())
        }
        Err(DiskError::Mount { source: nix::Error::EPERM, .. }) => Err(not_available(&format!(
            "mounting a tmpfs was refused: {}; run as root (e.g. with sudo)",
            nix::Error::EPERM.desc()
        ))),
        Err(e) => Err(not_available(&e.to_string())),
    }
}

/// The space of the filesystem holding `dir`, as the kernel reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Space {
    pub total: u64,
    pub available: u64,
    pub tmpfs: bool,
}

pub fn space(dir: &Path) -> io::Result<Space> {
    let s = nix::sys::statfs::statfs(dir).map_err(io::Error::from)?;
    let block = s.block_size() as u64;
    Ok(Space {
        total: s.blocks() * block,
        available: s.blocks_available() * block,
        tmpfs: s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC,
    })
}

/// Writes [`FILLER`] in `dir` until the filesystem is full (ENOSPC); returns the bytes the
/// file holds. Any other error is returned.
pub fn fill(dir: &Path) -> io::Result<u64> {
    let path = dir.join(FILLER);
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
    let chunk = vec![0xA5u8; 1024 * 1024];
    loop {
        match file.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => return Err(e),
        }
    }
    // A short write before ENOSPC leaves part of a chunk: the file's length counts it.
    Ok(file.metadata()?.len())
}

/// Deletes [`FILLER`] from `dir`; returns the bytes it held (0 when there was none).
pub fn free(dir: &Path) -> io::Result<u64> {
    let path = dir.join(FILLER);
    let len = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    std::fs::remove_file(&path)?;
    Ok(len)
}

/// Node `n`'s data directory, if it is a mount of this cluster's [`DataMounts`] and the kernel
/// says it is a tmpfs: the only kind of directory [`fill_node`] fills.
fn mount_of(cluster: &Cluster, n: u8) -> Result<&Path, String> {
    let m = cluster.data_mounts.as_ref().and_then(|m| m.of(n)).ok_or_else(|| {
        format!("n{n}'s data directory is not a size-limited tmpfs (the cluster was started without them)")
    })?;
    match space(m.path()) {
        Ok(s) if s.tmpfs => Ok(m.path()),
        Ok(_) => Err(format!("{} is no longer a tmpfs: it is not filled", m.path().display())),
        Err(e) => Err(format!("statfs {}: {e}", m.path().display())),
    }
}

/// Fills node `n`'s data directory until ENOSPC; the evidence is the space the kernel reports
/// afterwards, which must be (almost) none.
pub fn fill_node(cluster: &Cluster, n: u8) -> Result<Vec<String>, String> {
    let dir = mount_of(cluster, n)?;
    let written = fill(dir).map_err(|e| format!("filling {}: {e}", dir.display()))?;
    let s = space(dir).map_err(|e| format!("statfs {}: {e}", dir.display()))?;
    let line = format!(
        "n{n}'s data dir ({} tmpfs): {} written to {FILLER} until ENOSPC; statfs: {} available",
        bytes(s.total),
        bytes(written),
        bytes(s.available)
    );
    if s.available >= FULL_BELOW {
        return Err(format!("{line}, not full"));
    }
    Ok(vec![line])
}

/// Whether node `n`'s data directory was still full at the end of the hold (statfs), and how
/// many lines of its log met the full disk.
pub fn still_full(cluster: &Cluster, n: u8) -> Measured {
    let mut m = Measured::default();
    let dir = match mount_of(cluster, n) {
        Ok(d) => d,
        Err(e) => {
            m.problems.push(e);
            return m;
        }
    };
    let log = cluster.supervisor.node(n).map(|x| no_space_lines(&x.files.log)).unwrap_or(0);
    match space(dir) {
        Ok(s) if s.available < FULL_BELOW => m.evidence.push(format!(
            "n{n}'s data dir was still full at the end of the hold (statfs: {} available); {log} lines of its \
             log mention no space left",
            bytes(s.available)
        )),
        Ok(s) => m.problems.push(format!(
            "n{n}'s data dir had {} available at the end of the hold: the disk did not stay full",
            bytes(s.available)
        )),
        Err(e) => m.problems.push(format!("statfs {}: {e}", dir.display())),
    }
    m.proven = m.problems.is_empty();
    m
}

/// Deletes the filler from node `n`'s data directory; the evidence is the space back.
pub fn free_node(cluster: &Cluster, n: u8) -> Result<Vec<String>, String> {
    let dir = mount_of(cluster, n)?;
    let freed = free(dir).map_err(|e| format!("deleting {FILLER} in {}: {e}", dir.display()))?;
    let s = space(dir).map_err(|e| format!("statfs {}: {e}", dir.display()))?;
    if s.available < freed.min(FULL_BELOW) {
        return Err(format!("n{n}'s data dir has {} available after its filler was deleted", bytes(s.available)));
    }
    Ok(vec![format!(
        "n{n}'s data dir freed ({} filler deleted); statfs: {} available",
        bytes(freed),
        bytes(s.available)
    )])
}

/// Lines of a node's log that say a write met a full disk.
pub fn no_space_lines(log: &Path) -> usize {
    let text = std::fs::read(log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    text.lines().filter(|l| NO_SPACE_WORDS.iter().any(|w| l.contains(w))).count()
}

/// Bytes for people: `64 MiB`, `63.8 MiB`, `12 KiB`, `0 B`.
pub fn bytes(n: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let trim = |v: f64, unit: &str| {
        let s = format!("{v:.1}");
        format!("{} {unit}", s.strip_suffix(".0").unwrap_or(&s))
    };
    if n >= 1024 * 1024 {
        trim(n as f64 / MIB, "MiB")
    } else if n >= 1024 {
        trim(n as f64 / 1024.0, "KiB")
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(DATA_DIR_LIMIT), "64 MiB");
        assert_eq!(bytes(66_900_000), "63.8 MiB");
        assert_eq!(bytes(12 * 1024), "12 KiB");
        assert_eq!(bytes(0), "0 B");
    }

    #[test]
    fn a_refused_mount_is_not_available_here_with_the_kernels_words() {
        let refused = Err(DiskError::Mount { path: "/x".into(), size: 1024 * 1024, source: nix::Error::EPERM });
        let e = availability(refused).unwrap_err();
        assert!(
            e.starts_with("disk-full needs root to mount a size-limited tmpfs; not available here (")
                && e.contains("Operation not permitted")
                && e.contains("run as root"),
            "{e}"
        );
        let other = Err(DiskError::Mount { path: "/x".into(), size: 1024 * 1024, source: nix::Error::ENODEV });
        let e = availability(other).unwrap_err();
        assert!(e.contains("cannot mount a 1 MiB tmpfs on /x: ENODEV"), "{e}");
    }

    #[test]
    fn the_check_matches_what_this_process_may_do() {
        let dir = tempfile::tempdir().unwrap();
        let root = nix::unistd::geteuid().is_root();
        match check_mountable(dir.path()) {
            Ok(()) => assert!(root, "a non-root process mounted a tmpfs"),
            Err(e) => assert!(!root || e.contains("not available here"), "{e}"),
        }
        // Nothing is left behind either way.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    fn mounted(path: &Path) -> bool {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(path.to_str().unwrap()))
    }

    /// `needs_root_*` tests need root; `.ci/run` leaves them out by name when it is not root.
    #[test]
    #[ignore = "needs root (mounts a tmpfs)"]
    fn needs_root_filling_stops_at_enospc_and_freeing_gives_the_space_back() {
        assert!(nix::unistd::geteuid().is_root(), "this test mounts a tmpfs: run it as root");
        let dir = tempfile::tempdir().unwrap();
        let mount_point = dir.path().join("data");
        let m = Tmpfs::mount(&mount_point, 4 * 1024 * 1024).unwrap();
        assert!(mounted(&mount_point));
        let before = space(m.path()).unwrap();
        assert!(before.tmpfs && before.total == 4 * 1024 * 1024, "{before:?}");
        let written = fill(m.path()).unwrap();
        assert!(written > 3 * 1024 * 1024, "{written}");
        assert!(space(m.path()).unwrap().available < FULL_BELOW);
        assert_eq!(free(m.path()).unwrap(), written);
        assert_eq!(free(m.path()).unwrap(), 0);
        assert_eq!(space(m.path()).unwrap().available, before.available);
        drop(m);
        assert!(!mounted(&mount_point), "unmounted on drop");
    }
}
