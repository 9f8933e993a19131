//! Clock skew on one node (`kind = "clock-skew"`): libfaketime preloaded into every node of a
//! scenario that skews a clock, each node reading its offset from its own file (re-read about
//! once a second), the offset written there at inject and set back to zero at heal, and the
//! node's wall clock read back from the node itself as the proof: the timestamps of the lines
//! its log gains, else the `Date` header of its admin API. Only the wall clock
//! (`CLOCK_REALTIME`) moves; monotonic clocks are untouched.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::cluster::admin::{AdminClient, NodeClock};
use crate::cluster::Cluster;
use crate::proof::Measured;

/// Where Debian and Ubuntu put libfaketime (package `libfaketime`), tried in order.
pub const LIBFAKETIME_PATHS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
];

/// Names the library when it is somewhere else.
pub const ENV_LIBFAKETIME: &str = "CHRONIK_CHAOS_LIBFAKETIME";

/// The file in each node's directory that holds the node's offset (`+0` when not skewed).
pub const OFFSET_FILE: &str = "faketime";

/// The smallest skew a scenario may ask for: the node's clock is read from an HTTP `Date`
/// header (whole seconds), so a smaller one could not be told apart from none.
pub const MIN_OFFSET_MS: i64 = 5_000;
/// The largest (ten years either way).
pub const MAX_OFFSET_MS: i64 = 10 * 365 * 86_400_000;

/// How long a reading watches the node's log for new lines.
pub const LOG_WINDOW: Duration = Duration::from_secs(1);

/// How far a reading may sit outside the interval its source allows and still count.
pub const TOLERANCE: Duration = Duration::from_secs(1);

/// How long the node gets to show a new offset (libfaketime re-reads the file about once a
/// second; the server's `Date` header is refreshed once a second).
pub const SETTLE_WITHIN: Duration = Duration::from_secs(10);

/// Why a scenario with a clock skew cannot run here (it is N/A).
pub fn not_available(detail: &str) -> String {
    format!("clock-skew needs libfaketime (Debian/Ubuntu: apt-get install libfaketime); not available here ({detail})")
}

/// The library from `CHRONIK_CHAOS_LIBFAKETIME`, else the first of [`LIBFAKETIME_PATHS`] that exists.
pub fn locate() -> Result<PathBuf, String> {
    let candidates: Vec<&Path> = LIBFAKETIME_PATHS.iter().map(Path::new).collect();
    locate_in(std::env::var_os(ENV_LIBFAKETIME), &candidates)
}

/// [`locate`] with the override and the candidates given. An override that is not a file is
/// refused (never silently replaced by a default).
pub fn locate_in(overridden: Option<OsString>, candidates: &[&Path]) -> Result<PathBuf, String> {
    if let Some(path) = overridden.filter(|p| !p.is_empty()).map(PathBuf::from) {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(not_available(&format!("{ENV_LIBFAKETIME}={} is not a file", path.display())))
        };
    }
    candidates.iter().find(|p| p.is_file()).map(|p| p.to_path_buf()).ok_or_else(|| {
        let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        not_available(&format!("looked in {}; or set {ENV_LIBFAKETIME} to its path", looked.join(", ")))
    })
}

/// The environment of a node run under libfaketime `lib`, its offset read from `file`. Our own
/// `LD_PRELOAD`, if any, follows the library.
pub fn node_env(lib: &Path, file: &Path) -> Vec<(String, String)> {
    let mut preload = lib.display().to_string();
    if let Some(ours) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        preload = format!("{preload}:{}", ours.to_string_lossy());
    }
    vec![
        ("LD_PRELOAD".into(), preload),
        ("FAKETIME_TIMESTAMP_FILE".into(), file.display().to_string()),
        // Re-read the file whenever the second changes (the default is every 10 s).
        ("FAKETIME_CACHE_DURATION".into(), "0".into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ]
}

/// An offset as libfaketime reads it: seconds with a sign, a `.` fraction when not whole
/// (`+30`, `-1.5`, `+0`).
pub fn faketime_text(offset_ms: i64) -> String {
    let sign = if offset_ms < 0 { '-' } else { '+' };
    let (secs, ms) = (offset_ms.unsigned_abs() / 1000, offset_ms.unsigned_abs() % 1000);
    if ms == 0 {
        format!("{sign}{secs}")
    } else {
        format!("{sign}{secs}.{}", format!("{ms:03}").trim_end_matches('0'))
    }
}

/// An offset for people: `+30 s`, `-1.5 s`.
pub fn words(offset_ms: i64) -> String {
    format!("{} s", faketime_text(offset_ms))
}

/// Writes the offset file (through a rename, so libfaketime never reads half a line).
pub fn write_offset(file: &Path, offset_ms: i64) -> std::io::Result<()> {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!("{}\n", faketime_text(offset_ms)))?;
    std::fs::rename(&tmp, file)
}

/// The offset file of a node whose directory is `node_dir`; written as `+0` when missing (a
/// fresh node), left as it is otherwise (a node restarted during a skew keeps it).
pub fn prepare(node_dir: &Path) -> std::io::Result<PathBuf> {
    let file = node_dir.join(OFFSET_FILE);
    if !file.exists() {
        std::fs::create_dir_all(node_dir)?;
        write_offset(&file, 0)?;
    }
    Ok(file)
}

/// How far a node's clock is from ours, from one exchange: the node stamped its answer with
/// `date` (whole seconds, rounded down) somewhere between `sent` and `received` by our clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Skew {
    /// The smallest and largest skew (node − ours) the exchange allows, in ms.
    pub low_ms: i64,
    pub high_ms: i64,
}

impl Skew {
    pub fn from_clock(c: &NodeClock) -> Skew {
        let ms = |t: SystemTime| match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i64,
            Err(e) => -(e.duration().as_millis() as i64),
        };
        Skew { low_ms: ms(c.date) - ms(c.received), high_ms: ms(c.date) + 1_000 - ms(c.sent) }
    }

    /// Whether the node's clock is `offset_ms` from ours, within [`TOLERANCE`].
    pub fn matches(&self, offset_ms: i64) -> bool {
        let slack = TOLERANCE.as_millis() as i64;
        self.low_ms - slack <= offset_ms && offset_ms <= self.high_ms + slack
    }

    /// The middle of the interval, in seconds.
    pub fn seconds(&self) -> f64 {
        (self.low_ms + self.high_ms) as f64 / 2_000.0
    }

    /// `+30.2 s (±0.6 s)`.
    pub fn describe(&self) -> String {
        format!("{:+.1} s (±{:.1} s)", self.seconds(), (self.high_ms - self.low_ms) as f64 / 2_000.0)
    }
}

/// Where a reading of a node's clock came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The timestamp of the newest line the node's log gained while we watched it.
    Log,
    /// The `Date` header of the node's admin API.
    Date,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Log => "the timestamps of its log",
            Source::Date => "the Date header of its admin API",
        })
    }
}

/// One reading of a node's clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading {
    pub source: Source,
    pub skew: Skew,
}

/// Reads node's clock: the newest timestamped line its `log` gains during [`LOG_WINDOW`], else
/// the `Date` header of its admin API. The log wins when it has such a line: hyper (Chronik's
/// HTTP server) caches its `Date` per thread until the clock passes the next second, so after a
/// backward jump it goes on sending the old one for as long as the jump.
pub async fn read(admin: &AdminClient, log: &Path) -> Result<Reading, String> {
    let (t0, from) = (SystemTime::now(), std::fs::metadata(log).map_or(0, |m| m.len()));
    tokio::time::sleep(LOG_WINDOW).await;
    let t1 = SystemTime::now();
    let date = admin.clock().await;
    if let Some(skew) = log_since(log, from).and_then(|text| skew_of_lines(&text, t0, t1)) {
        return Ok(Reading { source: Source::Log, skew });
    }
    date.map(|c| Reading { source: Source::Date, skew: Skew::from_clock(&c) })
}

/// The complete lines `log` gained from byte `from` on (a line cut at `from` left out).
fn log_since(log: &Path, from: u64) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(log).ok()?;
    let start = from.saturating_sub(1);
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    // The byte before `from` ends a line, or `from` is mid-line: either way, drop up to the
    // first newline (at `from == 0` nothing came before).
    let text = if from == 0 { text } else { text.split_once('\n').map_or(String::new(), |(_, rest)| rest.to_string()) };
    Some(text.rsplit_once('\n').map_or(String::new(), |(whole, _)| whole.to_string()))
}

/// The skew the newest line of `text` stamped with an RFC 3339 UTC time (tracing's default
/// format, `2026-11-30T04:27:20.115904Z  INFO ...`) allows, the lines having been written
/// between `t0` and `t1` by our clock.
pub fn skew_of_lines(text: &str, t0: SystemTime, t1: SystemTime) -> Option<Skew> {
    let stamped = text.lines().rev().find_map(|l| humantime::parse_rfc3339(l.split_whitespace().next()?).ok())?;
    let ms = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    Some(Skew { low_ms: ms(stamped) - ms(t1), high_ms: ms(stamped) - ms(t0) })
}

/// Reads node `n`'s clock until it is `offset_ms` from ours, or [`SETTLE_WITHIN`] passes.
/// `Ok`: the evidence line; `Err`: what the node showed instead.
pub async fn await_offset(n: u8, admin: &AdminClient, log: &Path, offset_ms: i64) -> Result<String, String> {
    let started = Instant::now();
    loop {
        let last = match read(admin, log).await {
            Ok(r) if r.skew.matches(offset_ms) => {
                return Ok(format!(
                    "n{n}'s clock, read from {}: {} from ours (asked {}; shown {:.1} s after the offset file \
                     was written)",
                    r.source,
                    r.skew.describe(),
                    words(offset_ms),
                    started.elapsed().as_secs_f64()
                ))
            }
            Ok(r) => format!("{}, from {}", r.skew.describe(), r.source),
            Err(e) => e,
        };
        if started.elapsed() > SETTLE_WITHIN {
            return Err(format!(
                "n{n}'s clock did not read {} from ours within {} s (last reading: {last})",
                words(offset_ms),
                SETTLE_WITHIN.as_secs()
            ));
        }
    }
}

/// Sets node `n`'s clock `offset_ms` from true time (0: back in step) and waits until the node
/// itself shows it; returns the evidence. The nodes must run under libfaketime.
pub async fn skew(cluster: &Cluster, n: u8, offset_ms: i64) -> Result<Vec<String>, String> {
    let node = cluster.supervisor.node(n).map_err(|e| e.to_string())?;
    if cluster.supervisor.faketime().is_none() {
        return Err(format!("n{n} runs without libfaketime, so its clock cannot be moved"));
    }
    let file = node.files.dir.join(OFFSET_FILE);
    write_offset(&file, offset_ms).map_err(|e| format!("writing {}: {e}", file.display()))?;
    let line = await_offset(n, node.admin(), &node.files.log, offset_ms).await?;
    Ok(vec![if offset_ms == 0 { format!("back in step: {line}") } else { line }])
}

/// Whether node `n`'s clock still reads `offset_ms` from ours (at the end of the hold). A node
/// that does not answer (another fault may hold it) is said, not counted against the skew.
pub async fn still_skewed(cluster: &Cluster, n: u8, offset_ms: i64) -> Measured {
    let mut m = Measured { proven: true, ..Measured::default() };
    let Ok(node) = cluster.supervisor.node(n) else { return m };
    match read(node.admin(), &node.files.log).await {
        Ok(r) if r.skew.matches(offset_ms) => m.evidence.push(format!(
            "n{n}'s clock was still {} from ours at the end of the hold (read from {})",
            r.skew.describe(),
            r.source
        )),
        Ok(r) => {
            m.proven = false;
            m.problems.push(format!(
                "n{n}'s clock read {} from ours at the end of the hold (from {}), not {}: the skew did not hold",
                r.skew.describe(),
                r.source,
                words(offset_ms)
            ));
        }
        Err(e) => m.evidence.push(format!("n{n}'s clock could not be read again at the end of the hold ({e})")),
    }
    m
}

/// Removes the shared-memory objects libfaketime 0.9.10 leaves in `/dev/shm` for a process
/// it was preloaded into (`faketime_shm_<pid>`, `sem.faketime_sem_<pid>`), once that process is
/// gone.
pub fn remove_leftovers(pid: u32) {
    if crate::os::pid_alive(pid) {
        return;
    }
    for name in [format!("faketime_shm_{pid}"), format!("sem.faketime_sem_{pid}")] {
        let _ = std::fs::remove_file(Path::new("/dev/shm").join(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_written_as_libfaketime_reads_them() {
        for (ms, want) in
            [(30_000, "+30"), (-30_000, "-30"), (0, "+0"), (1_500, "+1.5"), (-5_250, "-5.25"), (7, "+0.007")]
        {
            assert_eq!(faketime_text(ms), want, "{ms}");
        }
        assert_eq!(words(-90_000), "-90 s");
        let dir = tempfile::tempdir().unwrap();
        let file = prepare(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "+0\n");
        write_offset(&file, 30_000).unwrap();
        // A node restarted during a skew keeps it.
        assert_eq!(prepare(dir.path()).unwrap(), file);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "+30\n");
    }

    #[test]
    fn the_library_is_found_by_override_or_default_path_and_named_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libfaketime.so.1");
        std::fs::write(&lib, b"").unwrap();
        let missing = dir.path().join("nowhere.so.1");
        assert_eq!(locate_in(None, &[&missing, &lib]).unwrap(), lib);
        assert_eq!(locate_in(Some(lib.clone().into()), &[&missing]).unwrap(), lib);
        let e = locate_in(None, &[&missing]).unwrap_err();
        assert!(
            e.starts_with(
                "clock-skew needs libfaketime (Debian/Ubuntu: apt-get install libfaketime); not available here"
            ) && e.contains("nowhere.so.1")
                && e.contains(ENV_LIBFAKETIME),
            "{e}"
        );
        // An override that is wrong is not replaced by a default that exists.
        let e = locate_in(Some(missing.clone().into()), &[&lib]).unwrap_err();
        assert!(e.contains(&format!("{ENV_LIBFAKETIME}={} is not a file", missing.display())), "{e}");
    }

    #[test]
    fn every_node_gets_the_preload_its_own_file_and_an_untouched_monotonic_clock() {
        let env = node_env(Path::new("/lib/ft.so"), Path::new("/run/node2/faketime"));
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert!(get("LD_PRELOAD").unwrap().starts_with("/lib/ft.so"));
        assert_eq!(get("FAKETIME_TIMESTAMP_FILE"), Some("/run/node2/faketime"));
        assert_eq!(get("FAKETIME_DONT_FAKE_MONOTONIC"), Some("1"));
        assert_eq!(get("FAKETIME_CACHE_DURATION"), Some("0"));
    }

    #[test]
    fn a_skew_is_read_from_the_newest_stamped_line_of_the_log() {
        let at = |s: u64, ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(s * 1000 + ms);
        // 1_800_000_000 s is 2027-01-15T08:00:00Z; the lines were written between t0 and t1.
        let (t0, t1) = (at(1_800_000_000, 0), at(1_800_000_001, 0));
        let text = "2027-01-15T07:58:00.100000Z  INFO a: first\n\
                    a continuation line\n\
                    2027-01-15T07:58:00.900000Z  INFO a: newest\n\
                    stand-in node 1: no stamp\n";
        let skew = skew_of_lines(text, t0, t1).unwrap();
        assert_eq!((skew.low_ms, skew.high_ms), (-120_100, -119_100));
        assert!(skew.matches(-120_000) && !skew.matches(0));
        assert_eq!(skew_of_lines("stand-in node 1: leads t-0\n", t0, t1), None);
        // Only complete lines that began after `from`.
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("n.log");
        std::fs::write(&log, "old line\nhalf of a li").unwrap();
        let from = std::fs::metadata(&log).unwrap().len();
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(&mut f, b"ne\nnew one\nnew two\nunfinished").unwrap();
        assert_eq!(log_since(&log, from).unwrap(), "new one\nnew two");
        assert_eq!(log_since(&log, 0).unwrap(), "old line\nhalf of a line\nnew one\nnew two");
        assert_eq!(log_since(&log, 9).unwrap(), "half of a line\nnew one\nnew two");
    }

    #[test]
    fn a_skew_is_judged_from_the_interval_the_date_header_allows() {
        let at = |s: u64, ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(s * 1000 + ms);
        // Sent at 100.200, answered at 100.300; the node stamped 130 (its clock in [130, 131)).
        let c = NodeClock { sent: at(100, 200), received: at(100, 300), date: at(130, 0) };
        let skew = Skew::from_clock(&c);
        assert_eq!((skew.low_ms, skew.high_ms), (29_700, 30_800));
        assert!(skew.matches(30_000) && skew.matches(31_500) && !skew.matches(32_000) && !skew.matches(0));
        assert_eq!(skew.describe(), "+30.2 s (±0.6 s)");
        // Back in step: 0 fits, a 5 s skew (the smallest allowed) does not.
        let c = NodeClock { sent: at(100, 900), received: at(101, 50), date: at(101, 0) };
        let skew = Skew::from_clock(&c);
        assert!(skew.matches(0) && !skew.matches(MIN_OFFSET_MS) && !skew.matches(-MIN_OFFSET_MS), "{skew:?}");
    }
}
