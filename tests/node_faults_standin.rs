//! The node faults beyond network and process, end to end against stand-in nodes
//! (`chronik-stand-in-node`, not Chronik) and the embedded Toxiproxy: a clock skew is read back
//! from the skewed node's own clock (its admin API's `Date` header, through libfaketime) and
//! undone at heal; a full disk is read from the kernel (statfs of the node's tmpfs) and freed at
//! heal; the stand-in, a correct broker, passes both. A machine without libfaketime makes a
//! clock-skew scenario N/A before any cluster starts.
//!
//! `needs_libfaketime_*` tests need libfaketime (Debian/Ubuntu: `apt-get install libfaketime`) and
//! `needs_root_*` tests need root (they mount tmpfs); both are `#[ignore]`d with that reason and
//! `.ci/run` includes them when the machine has what they need.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use chronik_chaos::results::ScenarioResult;
use chronik_chaos::runner;
use chronik_chaos::scenario::{self, Scenario};
use chronik_chaos::toxiproxy::server::EmbeddedServer;
use chronik_chaos::verdict::Verdict;

/// One scenario at a time: they share the machine's cores, and one sets an environment variable.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A built-in scenario with shorter phases (the fault still holds for 8 s).
fn builtin(name: &str) -> Scenario {
    let mut s = scenario::select(&scenario::builtin(), &[name.to_string()]).unwrap().remove(0);
    s.phases.warmup = Duration::from_secs(3);
    s.phases.hold = Duration::from_secs(8);
    s.phases.recovery = Duration::from_secs(10);
    s.phases.final_read_deadline = Duration::from_secs(20);
    s
}

async fn run(s: &Scenario, out_dir: PathBuf) -> ScenarioResult {
    let toxiproxy = EmbeddedServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cfg = support::standin_suite(support::standin_topology(support::free_standin_base(22000)), out_dir, 5);
    runner::run_scenario(&cfg, &toxiproxy.client(), s, 0, &|line| eprintln!("{line}")).await
}

fn evidence_with<'a>(r: &'a ScenarioResult, phrase: &str) -> Vec<&'a String> {
    r.fidelity.evidence.iter().filter(|e| e.contains(phrase)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs libfaketime (apt-get install libfaketime); .ci/run includes it when installed"]
async fn needs_libfaketime_a_skewed_clock_is_read_from_the_node_and_set_back_at_heal() {
    // The lock first: the test below points the library's variable elsewhere while it holds it.
    let _turn = ONE_AT_A_TIME.lock().await;
    if let Err(e) = chronik_chaos::clock::locate() {
        panic!("this test was asked for, but {e}");
    }
    for (name, asked) in [("clock-skew-leader", "+120 s"), ("clock-skew-leader-backwards", "-120 s")] {
        let dir = tempfile::tempdir().unwrap();
        let r = run(&builtin(name), dir.path().to_path_buf()).await;
        let why = format!("{name}: {:#?}\n{:#?}", r.explanation, r.fidelity);
        eprintln!("{why}");
        assert_eq!(r.verdict, Verdict::Pass, "{why}");
        assert!(r.fidelity.proven, "{why}");
        let leader = r.targets["leader"];
        // Read from the node (the stand-in's log has no timestamps: its Date header): the
        // offset at inject, still at the end of the hold, none after heal.
        let from_node = evidence_with(
            &r,
            &format!("n{leader}'s clock, read from the Date header of its admin API: {}", &asked[..2]),
        );
        assert_eq!(from_node.len(), 1, "{why}");
        assert!(from_node[0].contains(&format!("(asked {asked};")), "{why}");
        assert_eq!(evidence_with(&r, &format!("n{leader}'s clock was still {}", &asked[..2])).len(), 1, "{why}");
        assert_eq!(evidence_with(&r, "back in step: ").len(), 1, "{why}");
        // Every node ran under libfaketime with its own file; the skewed one is back at +0.
        for n in 1..=3 {
            let file = dir.path().join(format!("nodes/{name}/node{n}/faketime"));
            assert_eq!(std::fs::read_to_string(&file).unwrap(), "+0\n", "{}", file.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_skew_without_libfaketime_is_not_applicable_and_starts_nothing() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-libfaketime.so.1");
    // Read by the runner in this process; no other scenario runs while the lock is held.
    std::env::set_var(chronik_chaos::clock::ENV_LIBFAKETIME, &missing);
    let r = run(&builtin("clock-skew-leader-backwards"), dir.path().to_path_buf()).await;
    std::env::remove_var(chronik_chaos::clock::ENV_LIBFAKETIME);
    assert_eq!(r.verdict, Verdict::NotApplicable, "{:#?}", r.explanation);
    assert_eq!(r.explanation.len(), 1, "{:#?}", r.explanation);
    let e = &r.explanation[0];
    assert!(
        e.starts_with(
            "N/A: clock-skew needs libfaketime (Debian/Ubuntu: apt-get install libfaketime); not available here"
        ) && e.contains(&missing.display().to_string()),
        "{e}"
    );
    assert!(!dir.path().join("nodes").exists(), "no cluster was started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (mounts a tmpfs per node); .ci/run includes it when run as root"]
async fn needs_root_a_full_disk_is_read_from_the_kernel_and_freed_at_heal() {
    assert!(nix::unistd::geteuid().is_root(), "this test mounts a tmpfs per node: run it as root");
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let r = run(&builtin("disk-full-leader"), dir.path().to_path_buf()).await;
    let why = format!("{:#?}\n{:#?}", r.explanation, r.fidelity);
    eprintln!("{why}");
    assert!(r.fidelity.proven, "{why}");
    let leader = r.targets["leader"];
    let filled = evidence_with(&r, &format!("n{leader}'s data dir (64 MiB tmpfs): "));
    assert_eq!(filled.len(), 1, "{why}");
    assert!(filled[0].contains("until ENOSPC; statfs: 0 B available"), "{why}");
    assert_eq!(evidence_with(&r, &format!("n{leader}'s data dir was still full at the end of the hold")).len(), 1);
    assert_eq!(evidence_with(&r, &format!("n{leader}'s data dir freed (")).len(), 1, "{why}");
    // A leader that cannot write gives way (each stand-in node leads a partition at first):
    // every partition went on taking writes, none stalled for 10 s.
    let log = std::fs::read_to_string(&r.node_logs[usize::from(leader) - 1]).unwrap();
    assert!(log.contains("No space left on device") && log.contains("stepping down"), "{log}");
    assert_eq!(r.verdict, Verdict::Pass, "{why}");
    // Unmounted with the cluster: the data directories are plain (empty) directories again.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let run_dir = dir.path().join("nodes/disk-full-leader");
    assert!(!mounts.contains(run_dir.to_str().unwrap()), "{mounts}");
}
