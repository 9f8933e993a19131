//! Reports rendered from synthetic `results.json` files: snapshot tests of the Markdown and
//! JUnit for every verdict kind and hostile text, the first screen (four columns, a reason per
//! scenario, no bulk of passing scenarios), the size limit, parsing the JUnit back (with
//! quick-xml here, and with Python's junitparser — what EnricoMi/publish-unit-test-result-action
//! parses with — when installed), baseline deltas, plots, the `report` command, and the
//! consumer group's figures beside the producer's (queue scenarios).

use std::collections::BTreeMap;
use std::path::PathBuf;

use chronik_chaos::checker;
use chronik_chaos::checker::availability::PartitionAvailability;
use chronik_chaos::checker::group::{CommitRegression, Convergence, GroupJump, GroupReport, ResumeSkip};
use chronik_chaos::checker::keys::{KeyReorder, KeyReport};
use chronik_chaos::checker::metadata::MetadataReport;
use chronik_chaos::checker::quorum::{QuorumReport, Unquorate};
use chronik_chaos::checker::reads::{PollJump, PollReport};
use chronik_chaos::checker::{NonMonotonic, Placed};
use chronik_chaos::history::{value_of, History, Outcome, Read, Send, Setting, TopicSettings};
use chronik_chaos::liveness::{self, Timeline};
use chronik_chaos::report::markdown::Detail;
use chronik_chaos::report::{self, fit::GITHUB_COMMENT_LIMIT, junit, markdown, RenderOptions};
use chronik_chaos::results::{Checks, ChronikInfo, Counts, Event, Results, ScenarioResult, RESULTS_VERSION};
use chronik_chaos::verdict::{Fidelity, Verdict};
use expect_test::{expect, expect_file, Expect};

/// A synthetic run: 100 writes/s for 30 s, a fault from 5 s to 20 s that raises latency to
/// `fault_latency_us` and, when `outage`, stops acknowledgements from 8 s to 12 s; `lose` of
/// the acknowledged writes are never read back (lost, since later offsets are read).
fn scenario(
    name: &str,
    family: &str,
    verdict: Verdict,
    fault_latency_us: u64,
    outage: bool,
    lose: usize,
) -> ScenarioResult {
    let tl = Timeline { inject_us: 5_000_000, heal_us: 20_000_000, end_us: 30_000_000 };
    let mut h = History::default();
    let (mut t, mut seq) = (0u64, 0u64);
    while t < tl.end_us {
        let in_fault = (tl.inject_us..tl.heal_us).contains(&t);
        let lat = if in_fault { fault_latency_us } else { 1_500 + (seq % 7) * 100 };
        let done = if outage && (8_000_000..12_000_000).contains(&t) { 12_000_000 + seq % 50 } else { t + lat };
        h.sends.push(Send {
            producer: 0,
            seq,
            value: value_of(0, seq),
            invoked_us: t,
            completed_us: Some(done),
            outcome: Outcome::Ok { partition: (seq % 3) as i32, offset: (seq / 3) as i64 },
            broker: None,
            key: None,
        });
        seq += 1;
        t += 10_000;
    }
    for s in h.sends.iter().skip(lose) {
        if let Outcome::Ok { partition, offset } = s.outcome {
            h.reads.push(Read { partition, offset, value: s.value.clone(), at_us: tl.end_us, final_read: true });
        }
    }
    let anomalies = checker::check(&h);
    let live = liveness::measure(&h, &tl);
    let explanation = match verdict {
        Verdict::Pass => vec![],
        Verdict::Fail => {
            vec![format!("Safety violated: {} of {} acknowledged writes are affected.", lose, h.sends.len())]
        }
        Verdict::Hang => vec!["No recovery: fewer than half the steady writes per second within 60 s of heal.".into()],
        Verdict::Error => {
            vec!["The fault was not proven: the toxic was not found on the proxy after injection.".into()]
        }
        Verdict::NotApplicable => vec!["N/A: The cluster does not support what this scenario needs.".into()],
    };
    let proven = verdict != Verdict::Error;
    ScenarioResult {
        name: name.into(),
        family: family.into(),
        description: format!("Synthetic {family} scenario."),
        source: "<built-in scenarios>:1".into(),
        verdict,
        explanation,
        seed: 42,
        duration_ms: 31_000.0,
        timeline: vec![
            Event { t_ms: 1.0, what: "workload started: 1 producer × 100/s, acks=all, idempotence true".into() },
            Event { t_ms: 5_000.0, what: "inject: 1 fault(s) on leader=n1".into() },
            Event { t_ms: 20_000.0, what: "heal".into() },
            Event { t_ms: 30_000.0, what: "workload stopped".into() },
        ],
        targets: BTreeMap::from([("leader".to_string(), 1u8)]),
        toxics: vec!["kafka-n1: chaos-0-downstream (latency downstream latency=200 jitter=50)".into()],
        fidelity: Fidelity {
            proven,
            evidence: vec!["in place: 1 toxic on 1 proxy (read back from Toxiproxy)".into()],
            problems: if proven { vec![] } else { vec!["toxic chaos-0-downstream missing on kafka-n1".into()] },
        },
        counts: Counts {
            sends: h.sends.len(),
            acked: h.acked(),
            acked_during_fault: 1500,
            reads: h.reads.len(),
            final_reads: h.reads.len(),
            ..Counts::default()
        },
        anomalies,
        checks: None,
        liveness: Some(live),
        metrics: vec![],
        history_file: Some(PathBuf::from(format!("histories/{family}.json"))),
        node_logs: vec![PathBuf::from("nodes/x/node1/node1.log")],
        startup_failures: vec![],
        nodes: None,
        schedule: None,
        shrunk: None,
    }
}

fn results(scenarios: Vec<ScenarioResult>) -> Results {
    Results {
        version: RESULTS_VERSION,
        tool: "chronik-chaos 0.1.0".into(),
        chronik: ChronikInfo { binary: PathBuf::from("chronik-server"), version: "Chronik Server v2.10.4".into() },
        toxiproxy: "real toxiproxy-server 2.8.0".into(),
        seed: 42,
        started_at: "2026-11-26T12:00:00Z".into(),
        finished_at: "2026-11-26T12:05:00Z".into(),
        scenarios,
    }
}

fn all_pass() -> Results {
    results(vec![
        scenario("client-latency", "latency", Verdict::Pass, 200_000, false, 0),
        scenario("isolate-leader", "partition", Verdict::Pass, 2_000, true, 0),
        scenario("slow-close", "slow-close", Verdict::Pass, 1_800, false, 0),
    ])
}

fn mixed() -> Results {
    let mut hang = scenario("pause-leader", "process", Verdict::Hang, 9_000_000, true, 0);
    hang.startup_failures =
        vec!["node 2 never became ready within 45 s; last log lines:\nINFO starting\nINFO This node is a follower"
            .into()];
    let mut fail = scenario("cascading-failure", "process", Verdict::Fail, 9_000_000, true, 18);
    fail.checks = Some(checks());
    results(vec![
        scenario("client-latency", "latency", Verdict::Pass, 200_000, false, 0),
        fail,
        scenario("bandwidth-throttle", "bandwidth", Verdict::Error, 1_500, false, 0),
        hang,
    ])
}

/// What the timeline rules found in the synthetic cascading failure.
fn checks() -> Checks {
    let topic = TopicSettings {
        name: "chaos-cascading-failure".into(),
        partitions: 3,
        replication_factor: Setting { requested: Some(3), read_back: Some(3) },
        min_insync_replicas: Setting { requested: Some(2), read_back: None },
        replicas: BTreeMap::new(),
    };
    let partition = |p: i32, during: usize, recovery: Option<f64>| PartitionAvailability {
        partition: p,
        acked: 900,
        acked_before_fault: 300,
        acked_during_fault: during,
        longest_gap_ms: 7_000.0,
        gap_window_us: (5_000_000, 12_000_000),
        leader_before: Some(1),
        leader_lost_at_us: Some(5_000_000),
        failover_ms: None,
        quorum_possible_throughout: false,
        recovery_ms: recovery,
        clients_cut_from_leader: false,
    };
    Checks {
        faulted: true,
        topic,
        quorum: QuorumReport {
            min_insync_replicas: Some(2),
            min_insync_source: "2 (requested; the cluster did not say)".into(),
            checked: 40,
            violations: vec![],
            indeterminate: 3,
        },
        polls: PollReport::default(),
        partitions: vec![partition(0, 0, Some(850.0)), partition(1, 0, Some(1_250.0)), partition(2, 0, None)],
        metadata: MetadataReport::default(),
        group: None,
        keys: KeyReport::default(),
        txn: None,
    }
}

fn hostile() -> Results {
    let mut a = scenario("<script>alert(1)</script>|x", "a]]>b", Verdict::Fail, 2_000, false, 3);
    a.explanation = vec![
        "Lost writes\n# Injected heading\n<img src=x onerror=alert(1)> [click](http://evil.example) @octocat ```"
            .into(),
        "control \x1b[31mred\x1b[0m \x07 bell ]]> and </details> and %0A::error::spoofed".into(),
    ];
    a.description = "- [ ] not a task | not a cell".into();
    let mut b = scenario("`rm -rf /`", "x\"y'<z>&", Verdict::Hang, 2_000, false, 0);
    b.startup_failures = vec!["```\n</details>\n<!-- comment\nlog line \x1b[1mbold\x1b[0m".into()];
    results(vec![a, b])
}

/// The timeline-rule results of a faulted scenario: `partitions` as given, the topic as read back.
fn checks_with(topic: &str, partitions: Vec<PartitionAvailability>) -> Checks {
    Checks {
        faulted: true,
        topic: TopicSettings {
            name: format!("chaos-{topic}"),
            partitions: partitions.len() as i32,
            replication_factor: Setting { requested: Some(3), read_back: Some(3) },
            min_insync_replicas: Setting { requested: Some(2), read_back: None },
            replicas: BTreeMap::new(),
        },
        quorum: QuorumReport {
            min_insync_replicas: Some(2),
            min_insync_source: "2 (requested; the cluster did not say)".into(),
            checked: 1500,
            violations: vec![],
            indeterminate: 0,
        },
        polls: PollReport::default(),
        partitions,
        metadata: MetadataReport::default(),
        group: None,
        keys: KeyReport::default(),
        txn: None,
    }
}

/// A partition that served before, during and after the fault.
fn healthy_partition(partition: i32, recovery_ms: f64) -> PartitionAvailability {
    PartitionAvailability {
        partition,
        acked: 1000,
        acked_before_fault: 500,
        acked_during_fault: 500,
        longest_gap_ms: 510.0,
        gap_window_us: (5_000_000, 5_510_000),
        leader_before: Some(partition as u8 + 1),
        quorum_possible_throughout: true,
        recovery_ms: Some(recovery_ms),
        ..PartitionAvailability::default()
    }
}

fn placed(value: &str, partition: i32, offset: i64) -> Placed {
    Placed { value: value.into(), partition, offset }
}

/// One scenario per kind of reason the first screen names, with the numbers that decide it;
/// none of them loses, duplicates or leaves unseen a single write, so the old table showed
/// 0 / 0 / 0 for all the failures.
fn reasons() -> Results {
    let three = || (0..3).map(|p| healthy_partition(p, 40.0 + f64::from(p) * 10.0)).collect::<Vec<_>>();
    // A producer's later write acknowledged at a lower offset: misordered, nothing lost.
    let mut misordered = scenario("misordered-acks", "latency", Verdict::Fail, 2_000, false, 0);
    misordered.anomalies.non_monotonic = vec![
        NonMonotonic { partition: 0, earlier: placed("p0-747", 0, 501), later: placed("p0-750", 0, 499) },
        NonMonotonic { partition: 1, earlier: placed("p0-748", 1, 500), later: placed("p0-751", 1, 498) },
    ];
    misordered.explanation = vec![
        "FAIL: Safety violated: 2 of 3000 acknowledged writes are affected (2 non-monotonic: p0-747 @ 0:501 then \
         p0-750 @ 0:499, p0-748 @ 1:500 then p0-751 @ 1:498)."
            .into(),
    ];
    misordered.checks = Some(checks_with("misordered-acks", three()));
    // Readers served a partition out of order.
    let mut readers = scenario("one-way-partition", "partition", Verdict::Fail, 2_000, false, 0);
    let mut c = checks_with("one-way-partition", three());
    c.polls.skips = vec![PollJump { reader: "live".into(), partition: 0, from: 1027, to: 1029, missed: 1 }];
    c.polls.rewinds = vec![
        PollJump { reader: "live".into(), partition: 0, from: 1029, to: 1028, missed: 0 },
        PollJump { reader: "final".into(), partition: 0, from: 1029, to: 1028, missed: 0 },
    ];
    readers.checks = Some(c);
    readers.explanation = vec![
        "FAIL: Readers were served out of order: 1 skips over data and 2 rewinds (live reader jumped from 0:1027 to \
         0:1029 over 1 offsets that hold data; live reader went back from 0:1029 to 0:1028)."
            .into(),
        "Note: nodes answer ListOffsets(latest) with 0 and no error for partitions they do not lead.".into(),
    ];
    // An isolated leader acknowledging alone.
    let mut quorum = scenario("isolate-leader", "partition", Verdict::Fail, 2_000, false, 0);
    let mut c = checks_with("isolate-leader", three());
    let unquorate = |seq: u64, offset: i64| Unquorate {
        value: format!("p1-{seq}"),
        partition: 2,
        offset,
        node: 3,
        reachable: 0,
        needed: 1,
        invoked_us: 5_000_000 + seq,
        acked_us: 5_002_000 + seq,
    };
    c.quorum.violations = vec![unquorate(251, 167), unquorate(254, 168), unquorate(257, 169)];
    quorum.checks = Some(c);
    quorum.explanation = vec![
        "FAIL: 3 writes were acknowledged (acks=all) while the node that led their partition could not reach \
         min.insync.replicas − 1 other replicas (3 on partition 2 from n3); min.insync.replicas = 2 (requested; the \
         cluster did not say). First: p1-251 @ 2:167 acknowledged at 5.0 s while n3 could reach 0 of the 1 other \
         replicas it needed."
            .into(),
        "HANG: Stale leadership: n1 still named n3 leader of partition 2 at 15.2 s, 10.1 s after n3 was lost \
         (allowed 10000 ms)."
            .into(),
    ];
    // A partition whose leader was killed and no other node took over.
    let mut no_failover = scenario("kill-partition-leader", "process", Verdict::Hang, 2_000, true, 0);
    let mut parts = three();
    parts[1] = PartitionAvailability {
        acked_during_fault: 0,
        longest_gap_ms: 14_000.0,
        gap_window_us: (5_000_000, 19_000_000),
        leader_before: Some(2),
        leader_lost_at_us: Some(5_000_000),
        recovery_ms: Some(3_372.0),
        ..healthy_partition(1, 0.0)
    };
    no_failover.checks = Some(checks_with("kill-partition-leader", parts));
    no_failover.explanation = vec![
        "HANG: No failover for partition 1 after its leader n2 was lost at 5.0 s: no write to it was acknowledged \
         for the whole fault, although a majority of its replicas could reach each other throughout."
            .into(),
    ];
    // The harness gave up: the cluster never started, the reason carries a log tail.
    let mut harness = scenario("cascading-failure", "process", Verdict::Error, 2_000, false, 0);
    let tail: String =
        (0..60).map(|i| format!("\nharness-tail {i:02}: INFO chronik_server: waiting for peers")).collect();
    harness.explanation = vec![format!(
        "The harness could not complete this scenario: cluster not ready after 45 s: node 2's admin API: no answer; \
         last lines of node 2's log nodes/cascading-failure/node2/node2.log:{tail}"
    )];
    harness.startup_failures = vec![format!(
        "cluster not ready after 45 s: node 3's admin API: no answer; last lines of node 3's log \
         nodes/cascading-failure/node3/node3.log:{}",
        tail.replace("harness-tail", "error-startup-tail")
    )];
    (harness.liveness, harness.history_file, harness.checks) = (None, None, None);
    (harness.timeline, harness.toxics, harness.targets) = (vec![], vec![], BTreeMap::new());
    harness.fidelity = Fidelity::default();
    harness.counts = Counts::default();
    harness.anomalies = Default::default();
    // A pass whose cluster needed a second start-up: a finding, but no bulk in the comment.
    let mut pass = scenario("bridge", "partition", Verdict::Pass, 1_800, false, 0);
    pass.checks = Some(checks_with("bridge", three()));
    pass.explanation =
        vec!["Finding: 1 cluster start-up(s) never became ready and were retried (see startup_failures).".into()];
    pass.startup_failures = vec![format!(
        "cluster not ready after 45 s: node 1's admin API: no answer; last lines of node 1's log \
         nodes/bridge/node1/node1.log:{}",
        tail.replace("harness-tail", "pass-startup-tail")
    )];
    // No fault at all.
    let mut baseline = scenario("baseline", "baseline", Verdict::Pass, 1_800, false, 0);
    baseline.checks = Some(Checks { faulted: false, ..checks_with("baseline", three()) });
    results(vec![baseline, misordered, readers, quorum, no_failover, harness, pass])
}

/// 80 scenarios, half failing with long explanations and long start-up logs.
fn oversized() -> Results {
    let mut all = Vec::new();
    for i in 0..80 {
        let verdict = if i % 2 == 0 { Verdict::Fail } else { Verdict::Pass };
        let mut s = scenario(&format!("scenario-{i:02}"), "bulk", verdict, 2_000, false, usize::from(i % 2 == 0));
        if verdict == Verdict::Fail {
            s.explanation.push(format!("A long reason {}", "with many words ".repeat(200)));
            s.startup_failures = vec![(0..300).map(|l| format!("log line {l} of a start-up that hung\n")).collect()];
        }
        s.toxics = (0..40).map(|t| format!("raft-n1-to-n2: chaos-{t} (timeout upstream timeout=0)")).collect();
        all.push(s);
    }
    results(all)
}

/// A queue scenario: the producer figures of [`scenario`], 3 partitions that recovered, a group
/// of 3 that was handed every acknowledged write (120 twice) and settled 1.24 s after heal, and
/// 12 keys in order.
fn queue_scenario(name: &str, verdict: Verdict) -> ScenarioResult {
    let mut s = scenario(name, "queue", verdict, 2_000, false, 0);
    let mut c = checks_with(name, (0..3).map(|p| healthy_partition(p, 40.0)).collect());
    c.group = Some(GroupReport {
        members: 3,
        commit_mode: "auto".into(),
        consumed: 3000,
        polls: 3120,
        duplicates: 120,
        rebalances: 6,
        commits_ok: 58,
        commits_failed: 2,
        longest_stall_ms: 2_510.0,
        convergence: Convergence { from_us: 20_000_000, converged_us: Some(21_240_000), problems: vec![] },
        drained: true,
        ..GroupReport::default()
    });
    c.keys = KeyReport { keys: 12, ..KeyReport::default() };
    s.checks = Some(c);
    s
}

fn group_of(s: &mut ScenarioResult) -> &mut GroupReport {
    s.checks.as_mut().unwrap().group.as_mut().unwrap()
}

/// A queue scenario that passed, one whose group skipped writes, committed backwards, broke a
/// key's order and never settled, and a producer scenario beside them.
fn queue() -> Results {
    let pass = queue_scenario("queue-kill-leader", Verdict::Pass);
    let mut fail = queue_scenario("queue-isolate-coordinator", Verdict::Fail);
    let g = group_of(&mut fail);
    g.consumed = 2995;
    g.skipped = vec![placed("p0-1200", 0, 400), placed("p0-1203", 0, 401), placed("p0-1206", 0, 402)];
    g.not_reached = vec![placed("p0-2996", 2, 998), placed("p0-2999", 2, 999)];
    g.commit_regressions = vec![CommitRegression {
        partition: 0,
        before: 420,
        before_consumer: 1,
        after: 399,
        after_consumer: 2,
        at_us: 14_200_000,
    }];
    g.convergence = Convergence {
        from_us: 20_000_000,
        converged_us: None,
        problems: vec![
            "partition 2: no owner".into(),
            "partition 0: owned by consumer 1 and consumer 3 at once".into(),
        ],
    };
    g.drained = false;
    let list = |p: &[Placed]| p.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    let (skipped, not_reached, regression) =
        (list(&g.skipped), list(&g.not_reached), g.commit_regressions[0].to_string());
    let reorder =
        KeyReorder { key: "k7".into(), where_: "consumer 2".into(), partition: 1, first: (41, 530), then: (40, 529) };
    fail.explanation = vec![
        format!(
            "FAIL: 3 acknowledged writes that the log holds were never delivered to the consumer group, although \
             the group read past them (at-least-once broken): {skipped}."
        ),
        format!(
            "FAIL: The group accepted 1 commits lower than one it had already accepted and answered (committed \
             offsets went back): {regression}."
        ),
        format!("FAIL: Writes of one key came out of their order 1 times: {reorder}."),
        format!(
            "HANG: The consumer group never got to 2 acknowledged writes the log holds (the drain ran out of \
             time): {not_reached}."
        ),
        "HANG: The consumer group did not settle within 30000 ms of 20.0 s (every partition with exactly one \
         owner among its 3 members): partition 2: no owner; partition 0: owned by consumer 1 and consumer 3 at once."
            .into(),
    ];
    fail.checks.as_mut().unwrap().keys.reorders = vec![reorder];
    let producer = scenario("client-latency", "latency", Verdict::Pass, 200_000, false, 0);
    results(vec![pass, fail, producer])
}

fn opts() -> RenderOptions {
    RenderOptions { baseline: None, tolerance: 0.25, artifacts_url: None, base_dir: None }
}

#[test]
fn fixtures_are_the_committed_results_files() {
    // The fixtures double as inputs for `chronik-chaos report` by hand.
    for (name, r) in [("all-pass", all_pass()), ("mixed", mixed()), ("hostile", hostile()), ("reasons", reasons())] {
        let json = serde_json::to_string_pretty(&r).unwrap() + "\n";
        expect_file![format!("fixtures/results-{name}.json")].assert_eq(&json);
    }
}

#[test]
fn markdown_all_pass() {
    let md = markdown::render(&all_pass(), &opts(), GITHUB_COMMENT_LIMIT);
    assert!(md.starts_with("# ✅ Chronik resilience: PASS — all 3 scenarios passed"));
    expect_file!["snapshots/report-all-pass.md"].assert_eq(&md);
}

#[test]
fn markdown_mixed_lists_failures_first() {
    let md = markdown::render(&mixed(), &opts(), GITHUB_COMMENT_LIMIT);
    assert!(md.starts_with("# ❌ Chronik resilience: FAIL — 3 of 4 scenarios did not pass"));
    let pos = |needle: &str| md.find(needle).unwrap_or_else(|| panic!("{needle} missing"));
    // In the table: FAIL, ERROR, HANG, then PASS.
    assert!(pos("| cascading-failure |") < pos("| bandwidth-throttle |"));
    assert!(pos("| bandwidth-throttle |") < pos("| pause-leader |"));
    assert!(pos("| pause-leader |") < pos("| client-latency |"));
    assert!(md.contains("| **18** |"), "lost writes are counted and stand out");
    assert!(md.contains("```mermaid\nxychart-beta"));
    expect_file!["snapshots/report-mixed.md"].assert_eq(&md);
}

#[test]
fn markdown_hostile_text_cannot_inject() {
    let md = markdown::render(&hostile(), &opts(), GITHUB_COMMENT_LIMIT);
    // Text inside a code fence is inert (the fence is longer than any backtick run in it), so
    // markup is checked outside fences; control characters nowhere.
    let outside = outside_fences(&md);
    for bad in ["<script", "<img", "[click](http", "\n# Injected", "@octocat"] {
        assert!(!outside.contains(bad), "{bad:?} reached the report outside a code block");
    }
    for bad in ["\x1b", "\x07"] {
        assert!(!md.contains(bad), "{bad:?} reached the report");
    }
    // The lines that came with a reason are folded, in a code block.
    assert!(md.contains("<details><summary>The 2 lines that came with reason 1</summary>"), "{md}");
    // Balanced outside code blocks: every <details> is closed.
    assert_eq!(outside.matches("<details>").count(), outside.matches("</details>").count());
    expect_file!["snapshots/report-hostile.md"].assert_eq(&md);
}

/// What a reader sees first: everything before the first folded block or section.
fn first_screen(md: &str) -> &str {
    let end = [md.find("<details"), md.find("\n## ")].into_iter().flatten().min().unwrap_or(md.len());
    &md[..end]
}

/// The columns of a Markdown table row (`\|` is text, not a separator).
fn columns(row: &str) -> usize {
    let mut n = 0;
    let mut escaped = false;
    for c in row.chars() {
        if c == '|' && !escaped {
            n += 1;
        }
        escaped = c == '\\' && !escaped;
    }
    n - 1
}

/// The first screen's row of `name`.
fn row<'a>(head: &'a str, name: &str) -> &'a str {
    let start = format!("| {} |", report::escape::md(name));
    head.lines().find(|l| l.starts_with(&start)).unwrap_or_else(|| panic!("no row for {name} in\n{head}"))
}

#[test]
fn the_first_screen_is_one_table_of_at_most_four_columns() {
    for r in [all_pass(), mixed(), hostile(), reasons(), oversized(), queue()] {
        let md = markdown::render(&r, &opts(), GITHUB_COMMENT_LIMIT);
        let rows: Vec<&str> = first_screen(&md).lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(rows.len(), r.scenarios.len() + 2, "a header, a rule and one row per scenario");
        assert_eq!(rows[0], "| Scenario | Verdict | Why | Key figure |");
        for row in rows {
            assert!(columns(row) <= 4, "{row}");
        }
    }
}

#[test]
fn every_scenario_s_verdict_and_reason_come_before_anything_folded() {
    for r in [all_pass(), mixed(), hostile(), reasons(), oversized(), queue()] {
        let md = markdown::render(&r, &opts(), GITHUB_COMMENT_LIMIT);
        let head = first_screen(&md);
        for s in &r.scenarios {
            let why = markdown::why(s);
            assert!(!why.phrase.is_empty() && !why.figure.is_empty(), "{}: {why:?}", s.name);
            let row = row(head, &s.name);
            assert!(row.contains(&format!(" {} | ", s.verdict)), "{row}");
            assert!(row.contains(&report::escape::md(&why.phrase)), "{row}");
            assert!(row.contains(&report::escape::md(&why.figure)), "{row}");
        }
    }
}

#[test]
fn the_why_column_names_what_the_counts_do_not() {
    let r = reasons();
    let md = markdown::render(&r, &opts(), GITHUB_COMMENT_LIMIT);
    let head = first_screen(&md);
    // None of these failures lost, duplicated or left unseen a write: the old columns said 0 / 0 / 0.
    for s in r.scenarios.iter().filter(|s| s.verdict == Verdict::Fail) {
        let a = &s.anomalies;
        assert_eq!((a.lost.len(), a.duplicated.len(), a.unseen.len()), (0, 0, 0), "{}", s.name);
    }
    let misordered = row(head, "misordered-acks");
    assert!(misordered.contains("| 2 writes acked out of order |"), "{misordered}");
    assert!(misordered.contains("| 2 of 3000 acked affected |"), "{misordered}");
    let readers = row(head, "one-way-partition");
    assert!(readers.contains("| readers served out of order | 1 skip, 2 rewinds |"), "{readers}");
    let quorum = row(head, "isolate-leader");
    assert!(quorum.contains("| acked without quorum (3) (+1 more) | 3 of 1500 acked under fault |"), "{quorum}");
    let no_failover = row(head, "kill-partition-leader");
    assert!(no_failover.contains("| no failover for p1 (14.0 s) | recovered in 3.37 s |"), "{no_failover}");
    let harness = row(head, "cascading-failure");
    // The harness's own preamble is dropped: the phrase is what stopped the scenario.
    assert!(harness.contains("| cluster not ready after 45 s | — |"), "{harness}");
    assert!(row(head, "bridge").contains("| recovered in 60.0 ms | p99 under fault "));
    let baseline = row(head, "baseline");
    assert!(baseline.contains("| no fault, 3000 writes acked | p99 "), "{baseline}");
    assert!(!baseline.contains("under fault"), "a baseline has no fault: {baseline}");
}

#[test]
fn why_phrases_carry_the_figures_of_the_results() {
    let mut r = reasons();
    let by_name = |r: &Results, name: &str| markdown::why(r.scenarios.iter().find(|s| s.name == name).unwrap());
    assert_eq!(by_name(&r, "kill-partition-leader").phrase, "no failover for p1 (14.0 s)");
    r.scenarios[4].checks.as_mut().unwrap().partitions[1].longest_gap_ms = 9_250.0;
    r.scenarios[3].checks.as_mut().unwrap().quorum.violations.truncate(1);
    r.scenarios[1].anomalies.non_monotonic.truncate(1);
    assert_eq!(by_name(&r, "kill-partition-leader").phrase, "no failover for p1 (9.25 s)");
    assert_eq!(by_name(&r, "isolate-leader").phrase, "acked without quorum (1)");
    assert_eq!(by_name(&r, "misordered-acks").phrase, "1 write acked out of order");
    assert_eq!(by_name(&r, "misordered-acks").figure, "1 of 3000 acked affected");
    // Lost writes come first among several anomalies, and the figure counts them all.
    let mixed = mixed();
    let fail = markdown::why(&mixed.scenarios[1]);
    assert_eq!((fail.phrase.as_str(), fail.figure.as_str()), ("18 acked writes lost", "18 of 3000 acked affected"));
    let error = markdown::why(&mixed.scenarios[2]);
    assert_eq!((error.phrase.as_str(), error.figure.as_str()), ("fault not proven", "1 contradiction"));
}

#[test]
fn a_passing_scenario_s_bulk_stays_out_of_the_comment() {
    let r = reasons();
    for level in [Detail::Full, Detail::PassesSummarized, Detail::Trimmed, Detail::Minimal] {
        let md = markdown::render_at(&r, &opts(), level);
        assert!(!md.contains("pass-startup-tail"), "{level:?}: a passing scenario's start-up log tail is shown");
    }
    let url = "https://github.com/o/r/actions/runs/7";
    let md = markdown::render(&r, &RenderOptions { artifacts_url: Some(url.into()), ..opts() }, GITHUB_COMMENT_LIMIT);
    assert!(md.contains("A cluster start-up before this scenario never became ready (a finding): cluster not ready"));
    assert!(md.contains(&format!("among [the run's artifacts]({url})")), "points to the artifacts");
    // The pass lists no toxics; failures still do (folded).
    let bridge = &md[md.find("<summary>✅ bridge").unwrap()..];
    let bridge = &bridge[..bridge.find("</details>").unwrap()];
    assert!(bridge.contains("1 toxics placed (listed in `junit.xml`)") && !bridge.contains("- kafka-n1:"), "{bridge}");
    // A non-passing scenario's log tails stay, folded and bounded, latest lines kept.
    for tag in ["error-startup-tail", "harness-tail"] {
        let shown = md.matches(tag).count();
        assert!((10..=21).contains(&shown), "{tag}: {shown} of 60 lines");
        assert!(md.contains(&format!("{tag} 59")) && !md.contains(&format!("{tag} 00")), "{tag}");
    }
    let outside = outside_fences(&md);
    assert_eq!(outside.matches("<details>").count(), outside.matches("</details>").count());
}

#[test]
fn markdown_reasons() {
    let md = markdown::render(&reasons(), &opts(), GITHUB_COMMENT_LIMIT);
    expect_file!["snapshots/report-reasons.md"].assert_eq(&md);
}

/// The lines of `md` that are not inside a fenced code block.
fn outside_fences(md: &str) -> String {
    let mut fence: Option<String> = None;
    let mut out = String::new();
    for line in md.lines() {
        let ticks: String = line.chars().take_while(|&c| c == '`').collect();
        match &fence {
            Some(f) if line.trim_end() == f => fence = None,
            Some(_) => {}
            None if ticks.len() >= 3 => fence = Some(ticks),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    assert!(fence.is_none(), "a code fence was left open");
    out
}

#[test]
fn an_oversized_report_shrinks_under_the_limit_and_keeps_every_failure() {
    let r = oversized();
    let full = markdown::render_at(&r, &opts(), markdown::Detail::Full);
    assert!(full.len() > GITHUB_COMMENT_LIMIT, "the fixture must really be oversized: {}", full.len());
    let md = markdown::render(&r, &opts(), GITHUB_COMMENT_LIMIT);
    assert!(md.len() <= GITHUB_COMMENT_LIMIT, "{} bytes", md.len());
    assert!(md.contains("This report was shortened to fit"), "a notice says so");
    for s in r.scenarios.iter().filter(|s| s.verdict == Verdict::Fail) {
        assert!(md.contains(&format!("❌ {} — FAIL", s.name)), "{} is not listed", s.name);
    }
    let outside = outside_fences(&md);
    assert_eq!(outside.matches("<details>").count(), outside.matches("</details>").count());
    // A tighter limit still keeps the whole table (every scenario) and says it was cut.
    let tight = markdown::render(&r, &opts(), 20_000);
    assert!(tight.len() <= 20_000);
    for s in &r.scenarios {
        assert!(tight.contains(&format!("| {} |", s.name)), "{} missing from the table", s.name);
    }
    // Each level is tried in turn: a budget between two levels' sizes gets the richer one.
    let levels = [Detail::Full, Detail::PassesSummarized, Detail::Trimmed, Detail::Minimal];
    let sizes: Vec<usize> = levels.iter().map(|&l| markdown::render_at(&r, &opts(), l).len()).collect();
    assert!(sizes.windows(2).all(|w| w[0] > w[1]), "each level is smaller: {sizes:?}");
    for (i, &level) in levels.iter().enumerate().skip(1) {
        let budget = sizes[i] + 400;
        let md = markdown::render(&r, &opts(), budget);
        assert!(md.len() <= budget, "{level:?}: {} > {budget}", md.len());
        assert!(md.starts_with(&markdown::render_at(&r, &opts(), level)), "{level:?} is the level chosen");
    }
}

#[test]
fn junit_snapshots() {
    expect_file!["snapshots/junit-all-pass.xml"].assert_eq(&junit::render(&all_pass()));
    expect_file!["snapshots/junit-mixed.xml"].assert_eq(&junit::render(&mixed()));
    expect_file!["snapshots/junit-hostile.xml"].assert_eq(&junit::render(&hostile()));
}

/// Counts what a JUnit consumer sees, parsing with quick-xml (which rejects malformed XML).
fn parse_counts(xml: &str) -> (usize, usize, usize, Vec<String>) {
    use quick_xml::events::Event as X;
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut tests, mut failures, mut errors, mut names) = (0, 0, 0, Vec::new());
    loop {
        match reader.read_event().expect("well-formed XML") {
            X::Start(e) | X::Empty(e) => match e.name().as_ref() {
                b"testcase" => {
                    tests += 1;
                    let name = e.try_get_attribute("name").unwrap().unwrap();
                    names.push(name.normalized_value(quick_xml::XmlVersion::default()).unwrap().into_owned());
                }
                b"failure" => failures += 1,
                b"error" => errors += 1,
                _ => {}
            },
            X::Eof => break,
            _ => {}
        }
    }
    (tests, failures, errors, names)
}

#[test]
fn junit_parses_back_with_the_right_counts() {
    for (r, want) in [(all_pass(), (3, 0, 0)), (mixed(), (4, 1, 2)), (hostile(), (2, 1, 1)), (oversized(), (80, 40, 0))]
    {
        let xml = junit::render(&r);
        let (t, f, e, names) = parse_counts(&xml);
        assert_eq!((t, f, e), want);
        let c = junit::counts(&r);
        assert_eq!((c.tests, c.failures, c.errors), want);
        // Names survive escaping (minus control characters, which XML cannot carry).
        let expected: Vec<String> = r.scenarios.iter().map(|s| report::escape::xml_text(&s.name)).collect();
        assert_eq!(names, expected);
    }
}

/// Runs of one scenario that did not all end alike, and a pass that needed a retried start-up.
fn flaky_runs() -> Results {
    let mut retried = scenario("kill-leader", "process", Verdict::Pass, 2_000, false, 0);
    retried.startup_failures = vec!["node 3 never became ready within 45 s".into()];
    results(vec![
        scenario("isolate-leader#1", "partition", Verdict::Pass, 2_000, false, 0),
        scenario("isolate-leader#2", "partition", Verdict::Hang, 2_000, true, 0),
        scenario("isolate-leader#3", "partition", Verdict::Pass, 2_000, false, 0),
        retried,
    ])
}

#[test]
fn junit_counts_flaky_scenarios_apart_and_marks_a_pass_that_needed_a_retried_start_up() {
    let xml = junit::render(&flaky_runs());
    assert!(xml.contains(r#"<property name="flaky" value="2"/>"#), "{xml}");
    assert!(
        xml.contains(
            r#"<property name="flaky.isolate-leader" value="FLAKY isolate-leader: 1 of 3 runs did not pass (33%)"/>"#
        ),
        "{xml}"
    );
    assert!(xml.contains(r#"<flakyError type="startup" message="passed after 1 cluster start-up(s) never became ready and were retried">- start-up: node 3 never became ready within 45 s"#), "{xml}");
    // A flaky pass is still a pass: one error (the HANG), no failure.
    let (tests, failures, errors, _) = parse_counts(&xml);
    assert_eq!((tests, failures, errors), (4, 0, 1));
    assert!(junit::render(&all_pass()).contains(r#"<property name="flaky" value="0"/>"#));
}

/// Parses the JUnit with Python's `junitparser` (`.ci/run` installs it and runs this).
#[test]
#[ignore = "needs python3 with junitparser; .ci/run installs it from .ci/requirements.txt and runs this"]
fn junit_loads_in_junitparser() {
    let script = r#"
import sys, json
from junitparser import JUnitXml, Failure, Error
xml = JUnitXml.fromfile(sys.argv[1])
tests = failures = errors = 0
for suite in xml:
    for case in suite:
        tests += 1
        failures += sum(isinstance(r, Failure) for r in case.result)
        errors += sum(isinstance(r, Error) for r in case.result)
print(json.dumps([tests, failures, errors, xml.tests, xml.failures, xml.errors]))
"#;
    let have = std::process::Command::new("python3")
        .args(["-c", "import junitparser"])
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(have, "python3 with junitparser is needed (.ci/run installs it from .ci/requirements.txt)");
    let dir = tempfile::tempdir().unwrap();
    for (r, want) in [(all_pass(), [3, 0, 0]), (mixed(), [4, 1, 2]), (hostile(), [2, 1, 1]), (flaky_runs(), [4, 0, 1])]
    {
        let path = dir.path().join("junit.xml");
        std::fs::write(&path, junit::render(&r)).unwrap();
        let out = std::process::Command::new("python3").arg("-c").arg(script).arg(&path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got: Vec<usize> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(&got[..3], &want, "per-case results");
        assert_eq!(&got[3..], &want, "suite totals");
    }
}

#[test]
fn baseline_deltas_mark_regressions_beyond_the_tolerance() {
    let base = results(vec![
        scenario("client-latency", "latency", Verdict::Pass, 200_000, false, 0),
        scenario("isolate-leader", "partition", Verdict::Pass, 2_000, false, 0),
        scenario("gone", "x", Verdict::Pass, 2_000, false, 0),
    ]);
    let now = results(vec![
        // 210 ms vs 200 ms: within 25 %.
        scenario("client-latency", "latency", Verdict::Pass, 210_000, false, 0),
        // An outage appeared and the verdict got worse.
        scenario("isolate-leader", "partition", Verdict::Hang, 2_000, true, 0),
        scenario("new-one", "x", Verdict::Pass, 2_000, false, 0),
    ]);
    let d = report::baseline::compare(&now, &base, 0.25);
    assert_eq!(d.len(), 4);
    assert!(d[0].regressions.is_empty(), "{:?}", d[0].regressions);
    assert!(d[1].regressions.iter().any(|r| r == "verdict PASS → HANG"), "{:?}", d[1].regressions);
    assert!(d[1].regressions.iter().any(|r| r.starts_with("longest unavailability")), "{:?}", d[1].regressions);
    assert_eq!((d[2].was, d[2].now), (None, Some(Verdict::Pass)));
    assert_eq!((d[3].was, d[3].now), (Some(Verdict::Pass), None));
    // With a tolerance of 1 % the latency change counts.
    let strict = report::baseline::compare(&now, &base, 0.01);
    assert!(strict[0].regressions.iter().any(|r| r.starts_with("p99 under fault")), "{:?}", strict[0].regressions);
    let md = markdown::render(
        &now,
        &RenderOptions { baseline: Some(base), tolerance: 0.25, artifacts_url: None, base_dir: None },
        GITHUB_COMMENT_LIMIT,
    );
    assert!(md.contains("## Compared with baseline"));
    assert!(md.contains("**⚠️ 1 scenario(s) regressed**"));
    expect_file!["snapshots/report-baseline.md"].assert_eq(&md);
}

#[test]
fn paths_under_the_results_directory_are_shown_relative() {
    let mut r = mixed();
    r.scenarios[3].history_file = Some(PathBuf::from("/runs/r1/histories/pause-leader.json"));
    r.scenarios[3].startup_failures = vec!["node 2 never became ready; log /runs/r1/nodes/p/node2/node2.log".into()];
    let rel = report::relative_to(&r, std::path::Path::new("/runs/r1"));
    assert_eq!(rel.scenarios[3].history_file, Some(PathBuf::from("histories/pause-leader.json")));
    assert_eq!(rel.scenarios[3].startup_failures[0], "node 2 never became ready; log nodes/p/node2/node2.log");
    let dir = tempfile::tempdir().unwrap();
    let opts = RenderOptions { base_dir: Some("/runs/r1".into()), ..opts() };
    let rendered = report::render_all(&r, dir.path(), &opts).unwrap();
    assert!(!rendered.markdown.contains("/runs/r1"), "no absolute path of the run's machine");
    assert!(!std::fs::read_to_string(rendered.junit).unwrap().contains("/runs/r1"));
}

#[test]
fn plots_shade_the_fault_window_and_draw_both_panels() {
    let r = mixed();
    let s = &r.scenarios[1];
    let svg = report::plot::scenario_svg(s).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
    assert!(svg.contains("cascading-failure — FAIL"));
    // The fault window: a translucent red rectangle in each panel.
    assert_eq!(svg.matches(r##"opacity="0.15" fill="#DC3C3C""##).count(), 3, "two panels and the legend");
    assert!(svg.matches("<polyline").count() >= 3, "p50, p99 and throughput lines");
    assert!(svg.contains("latency (ms, log)") && svg.contains("acked writes/s"));
    let chart = report::plot::mermaid(s).unwrap();
    assert!(chart.contains("title \"Acked writes/s over time, fault 5–20 s\""), "{chart}");
    assert_eq!(report::plot::file_name(0, &hostile().scenarios[0]), "01-script-alert-1-script-x.svg");
}

#[test]
fn the_report_command_writes_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let results_path = dir.path().join("results.json");
    mixed().write(&results_path).unwrap();
    let summary = dir.path().join("summary.md");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chronik-chaos"))
        .args(["report", "--results"])
        .arg(&results_path)
        .arg("--step-summary")
        .arg(&summary)
        .arg("--annotations")
        .env_remove("GITHUB_ACTIONS")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for f in ["junit.xml", "report.md", "plots/01-client-latency.svg", "plots/04-pause-leader.svg"] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert_eq!(std::fs::read_to_string(&summary).unwrap(), md + "\n");
    let errors: Vec<&str> = stdout.lines().filter(|l| l.starts_with("::error ")).collect();
    assert_eq!(errors.len(), 3, "{stdout}");
    assert!(errors[0].starts_with("::error title=chaos scenario cascading-failure FAIL::Safety violated"));

    // A results file of another version is refused with exit 2 and says why.
    std::fs::write(&results_path, r#"{"version": 99}"#).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chronik-chaos"))
        .args(["report", "--results"])
        .arg(&results_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("results version 99"));
}

/// The rows of the folded "Consumer group" table and the "Keys" line of each scenario that has them.
fn consumer_blocks(md: &str) -> String {
    let mut out = String::new();
    let mut summary = "";
    let mut inside = false;
    for line in md.lines() {
        if line.starts_with("<details><summary>") {
            summary = line;
        }
        if line.starts_with("| Consumer group |") {
            out.push_str(summary);
            out.push('\n');
            inside = true;
        }
        if inside && line.is_empty() {
            inside = false;
        }
        if inside || line.starts_with("**Keys:**") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn markdown_queue_first_screen() {
    let md = markdown::render(&queue(), &opts(), GITHUB_COMMENT_LIMIT);
    expect![[r#"
        # ❌ Chronik resilience: FAIL — 1 of 3 scenarios did not pass

        **1 FAIL · 0 HANG · 0 ERROR · 2 PASS** · Chronik Server v2.10.4 · seed `42`

        | Scenario | Verdict | Why | Key figure |
        |---|---|---|---|
        | queue-isolate-coordinator | ❌ FAIL | 3 writes never delivered to the group (+4 more) | 3 of 3000 acked |
        | queue-kill-leader | ✅ PASS | recovered in 40.0 ms | consumed 3000, 120 dup |
        | client-latency | ✅ PASS | recovered in 1.00 s | p99 under fault 200 ms |

        <sub>FAIL: acknowledged writes lost, duplicated or misordered, acknowledged without a quorum, or served to readers out of order. HANG: no failover, progress or recovery in time, or a cluster not whole after heal. ERROR: the fault's effect was not measured, or the harness failed. With a consumer group, FAIL also means a write it read past and was never handed, a committed offset that went back, a member resuming past a commit, records or a key's writes out of order, or a value the log does not hold; HANG also means writes the group never got to, or a group that never settled.</sub>

        <sub>Toxiproxy: real toxiproxy-server 2.8.0 · 2026-11-26T12:00:00Z → 2026-11-26T12:05:00Z</sub>

    "#]]
    .assert_eq(first_screen(&md));
}

#[test]
fn markdown_queue_consumer_group_blocks() {
    let r = queue();
    let md = markdown::render(&r, &opts(), GITHUB_COMMENT_LIMIT);
    expect![[r#"
        <details><summary>❌ queue-isolate-coordinator — FAIL: 3 writes never delivered to the group</summary>
        | Consumer group | |
        |---|--:|
        | Members, commit mode | 3 members, auto |
        | Consumed | 2995 values in 3120 polls |
        | Duplicates delivered | 120 |
        | Rebalances (assignments) | 6 |
        | Commits accepted / refused | 58 / 2 |
        | Longest group stall | 2.51 s |
        | Settled after heal | **never** (partition 2: no owner; partition 0: owned by consumer 1 and consumer 3 at once) |
        | Drained | **no** |
        | Never delivered, read past (skipped) | **3** |
        | Never reached | **2** |
        | Committed offset went back | **1** |
        **Keys:** 12 written, **1 reorder** (in the log and as members were handed them).
        <details><summary>✅ queue-kill-leader — recovered in 40.0 ms</summary>
        | Consumer group | |
        |---|--:|
        | Members, commit mode | 3 members, auto |
        | Consumed | 3000 values in 3120 polls |
        | Duplicates delivered | 120 |
        | Rebalances (assignments) | 6 |
        | Commits accepted / refused | 58 / 2 |
        | Longest group stall | 2.51 s |
        | Settled after heal | 1.24 s |
        | Drained | yes |
        **Keys:** 12 written, 0 reorders (in the log and as members were handed them).
    "#]].assert_eq(&consumer_blocks(&md));
    // Passes summarized: the group's figures stay in the pass's one line.
    let summarized = markdown::render_at(&r, &opts(), Detail::PassesSummarized);
    assert!(
        summarized.contains("- ✅ **queue-kill-leader**: recovered in 40.0 ms, 3000 acked, consumed 3000, 120 dup,")
    );
    // What results.json does not hold is not shown: no commit mode, no keys.
    let mut quiet = queue();
    quiet.scenarios.truncate(1);
    group_of(&mut quiet.scenarios[0]).commit_mode = String::new();
    quiet.scenarios[0].checks.as_mut().unwrap().keys = KeyReport::default();
    let md = markdown::render(&quiet, &opts(), GITHUB_COMMENT_LIMIT);
    let block = consumer_blocks(&md);
    assert!(block.contains("| Members | 3 members |") && !block.contains("commit mode"), "{block}");
    assert!(!block.contains("**Keys:**"), "{block}");
}

#[test]
fn a_producer_scenario_shows_no_consumer_figures() {
    for r in [all_pass(), mixed(), reasons()] {
        let md = markdown::render(&r, &opts(), GITHUB_COMMENT_LIMIT);
        assert!(!md.contains("Consumer group") && !md.contains("**Keys:**"), "a group that did not run is shown");
        assert!(!md.contains("With a consumer group"), "the legend speaks of a group that did not run");
        let xml = junit::render(&r);
        assert!(!xml.contains("\"group.") && !xml.contains("\"keys."), "properties of a group that did not run");
    }
    let md = markdown::render(&queue(), &opts(), GITHUB_COMMENT_LIMIT);
    let producer = &md[md.find("<summary>✅ client-latency").unwrap()..];
    assert!(!producer.contains("Consumer group"), "{producer}");
}

#[test]
fn junit_queue_properties() {
    let xml = junit::render(&queue());
    let mut out = String::new();
    for line in xml.lines().map(str::trim) {
        if line.starts_with("<testcase") || line.contains("\"group.") || line.contains("\"keys.") {
            out.push_str(line);
            out.push('\n');
        }
    }
    expect![[r#"
        <testcase name="queue-kill-leader" classname="queue" time="31.000">
        <property name="group.members" value="3"/>
        <property name="group.commit_mode" value="auto"/>
        <property name="group.consumed" value="3000"/>
        <property name="group.polls" value="3120"/>
        <property name="group.duplicates" value="120"/>
        <property name="group.rebalances" value="6"/>
        <property name="group.commits_ok" value="58"/>
        <property name="group.commits_failed" value="2"/>
        <property name="group.longest_stall" value="2.51 s"/>
        <property name="group.settled_after" value="1.24 s"/>
        <property name="group.drained" value="true"/>
        <property name="group.skipped" value="0"/>
        <property name="group.not_reached" value="0"/>
        <property name="group.commit_regressions" value="0"/>
        <property name="group.resume_skips" value="0"/>
        <property name="group.jumps" value="0"/>
        <property name="group.wrong_values" value="0"/>
        <property name="keys.written" value="12"/>
        <property name="keys.reorders" value="0"/>
        <property name="keys.split" value="0"/>
        <testcase name="queue-isolate-coordinator" classname="queue" time="31.000">
        <property name="group.members" value="3"/>
        <property name="group.commit_mode" value="auto"/>
        <property name="group.consumed" value="2995"/>
        <property name="group.polls" value="3120"/>
        <property name="group.duplicates" value="120"/>
        <property name="group.rebalances" value="6"/>
        <property name="group.commits_ok" value="58"/>
        <property name="group.commits_failed" value="2"/>
        <property name="group.longest_stall" value="2.51 s"/>
        <property name="group.settled_after" value="never"/>
        <property name="group.drained" value="false"/>
        <property name="group.skipped" value="3"/>
        <property name="group.not_reached" value="2"/>
        <property name="group.commit_regressions" value="1"/>
        <property name="group.resume_skips" value="0"/>
        <property name="group.jumps" value="0"/>
        <property name="group.wrong_values" value="0"/>
        <property name="keys.written" value="12"/>
        <property name="keys.reorders" value="1"/>
        <property name="keys.split" value="0"/>
        <testcase name="client-latency" classname="latency" time="31.000">
    "#]]
    .assert_eq(&out);
}

/// The first screen's phrase and figure for a queue scenario changed by `change`.
fn check_why(verdict: Verdict, change: impl FnOnce(&mut ScenarioResult), expected: Expect) {
    let mut s = queue_scenario("q", verdict);
    change(&mut s);
    let w = markdown::why(&s);
    expected.assert_eq(&format!("{} | {}", w.phrase, w.figure));
}

#[test]
fn group_why_phrases_follow_the_verdict_s_order() {
    check_why(Verdict::Pass, |_| {}, expect!["recovered in 40.0 ms | consumed 3000, 120 dup"]);
    let skipped = |s: &mut ScenarioResult| {
        group_of(s).skipped = vec![placed("p0-3", 0, 1), placed("p0-6", 0, 2), placed("p0-9", 0, 3)];
    };
    check_why(Verdict::Fail, skipped, expect!["3 writes never delivered to the group | 3 of 3000 acked"]);
    let regression = |s: &mut ScenarioResult| {
        let r =
            CommitRegression { partition: 1, before: 42, before_consumer: 0, after: 17, after_consumer: 2, at_us: 9 };
        group_of(s).commit_regressions = vec![r.clone(), r];
    };
    check_why(Verdict::Fail, regression, expect!["committed offset went back | 2 regressions, p1 42 → 17"]);
    // Skipped writes come before a regression, as the verdict lists them.
    check_why(
        Verdict::Fail,
        |s| (skipped(s), regression(s)).1,
        expect!["3 writes never delivered to the group | 3 of 3000 acked"],
    );
    let resume = |committed| {
        move |s: &mut ScenarioResult| {
            group_of(s).resume_skips = vec![ResumeSkip {
                consumer: 1,
                assignment: 2,
                partition: 0,
                committed,
                log_start: 0,
                first_polled: 120,
                at_us: 9,
            }];
        }
    };
    check_why(Verdict::Fail, resume(Some(100)), expect!["member resumed past commit | 1 takeover, p0 at 120 past 100"]);
    check_why(
        Verdict::Fail,
        resume(None),
        expect!["member resumed past commit | 1 takeover, p0 at 120 past log start 0"],
    );
    let jump = |from, to| GroupJump { consumer: 0, assignment: 1, partition: 2, from, to };
    check_why(
        Verdict::Fail,
        |s| group_of(s).jumps = vec![jump(10, 14), jump(14, 12), jump(20, 20)],
        expect!["group served out of order | 1 skip, 2 rewinds"],
    );
    check_why(
        Verdict::Fail,
        |s| group_of(s).wrong_values = vec![placed("p0-1", 0, 0)],
        expect!["1 wrong value served to the group | 1 of 3000 consumed"],
    );
    let reorder = KeyReorder { key: "k1".into(), where_: "log".into(), partition: 0, first: (3, 9), then: (2, 10) };
    check_why(
        Verdict::Fail,
        |s| s.checks.as_mut().unwrap().keys.reorders = vec![reorder],
        expect!["key order broken | 1 reorder, 12 keys"],
    );
    let not_reached =
        |s: &mut ScenarioResult| group_of(s).not_reached = (0..12).map(|i| placed("p0-1", 1, i)).collect();
    check_why(Verdict::Hang, not_reached, expect!["group never got to 12 writes | 12 of 3000 acked"]);
    let unsettled = |problems: Vec<String>| {
        move |s: &mut ScenarioResult| {
            group_of(s).convergence = Convergence { from_us: 20_000_000, converged_us: None, problems };
        }
    };
    check_why(
        Verdict::Hang,
        unsettled(vec!["partition 2: no owner".into()]),
        expect!["group did not settle | 1 partition without one owner"],
    );
    check_why(Verdict::Hang, unsettled(vec![]), expect!["group did not settle | never settled"]);
    // A producer rule the verdict lists first still comes first.
    let unseen = |s: &mut ScenarioResult| {
        s.anomalies.unseen = vec![placed("p0-2", 2, 0)];
        not_reached(s);
    };
    check_why(Verdict::Hang, unseen, expect!["1 acked write unseen | 1 of 3000 acked"]);
}

/// A transactional scenario that passed, one that read an aborted write, and one the cluster
/// could not run (N/A): each on the first screen, with its figures, and N/A as JUnit's skipped.
#[test]
fn transactions_and_not_applicable_scenarios() {
    use chronik_chaos::checker::txn::{BadRead, TxnReport};
    let txn = |name: &str, verdict: Verdict| {
        let mut s = scenario(name, "transactions", verdict, 2_000, false, 0);
        let mut c = checks_with(name, (0..3).map(|p| healthy_partition(p, 40.0)).collect());
        c.faulted = false;
        c.txn = Some(TxnReport {
            applicable: true,
            committed: 194,
            aborted: 64,
            committed_values: 580,
            committed_values_read: 580,
            values_read: 580,
            ..TxnReport::default()
        });
        s.checks = Some(c);
        s
    };
    let pass = txn("txn-baseline", Verdict::Pass);
    let mut fail = txn("txn-kill-leader", Verdict::Fail);
    let t = fail.checks.as_mut().unwrap().txn.as_mut().unwrap();
    t.failed = 3;
    t.aborted_reads = (0..5)
        .map(|i| BadRead {
            reader: "final".into(),
            read: placed(&format!("t1-36-{i}"), 2, 132 + i),
            at_us: 37_265_000,
            txn: "t1-36".into(),
            outcome: "failed".into(),
            ended_us: Some(5_054_000),
        })
        .collect();
    fail.explanation = vec!["FAIL: Transactions: 5 reads of values of aborted or failed transactions.".into()];
    let mut na = scenario("txn-isolate-leader", "transactions", Verdict::NotApplicable, 0, false, 0);
    na.explanation = vec!["N/A: the cluster does not advertise what transactions need (EndTxn).".into()];
    let r = results(vec![pass, fail, na]);
    let md = markdown::render(&r, &opts(), GITHUB_COMMENT_LIMIT);
    let head = first_screen(&md);
    assert!(row(head, "txn-baseline").contains("194 committed, 64 aborted"), "{head}");
    assert!(row(head, "txn-kill-leader").contains("5 aborted writes read"), "{head}");
    assert!(
        row(head, "txn-isolate-leader").contains("N/A") && row(head, "txn-isolate-leader").contains("not applicable"),
        "{head}"
    );
    assert!(md.contains("**Transactions:** 194 committed, 64 aborted, 3 failed, 0 indeterminate; 580 of 580 committed writes read back; **5 violations**"), "{md}");
    let xml = junit::render(&r);
    let c = junit::counts(&r);
    assert_eq!((c.tests, c.failures, c.errors, c.skipped), (3, 1, 0, 1));
    assert!(xml.contains("skipped=\"1\"") && xml.contains("<skipped type=\"N/A\" message=\"N/A: the cluster"), "{xml}");
    assert!(
        xml.contains("name=\"txn.committed\" value=\"194\"") && xml.contains("name=\"txn.violations\" value=\"5\""),
        "{xml}"
    );
}

/// A scenario that ran a generated schedule, failed and was shrunk: the report lists its
/// schedule, its replay command and the smallest schedule with its own; JUnit carries them as
/// properties; repetitions that did not all end alike are FLAKY under the first screen.
#[test]
fn schedules_replay_commands_and_flaky_runs() {
    use chronik_chaos::scenario::{Fault, Target};
    use chronik_chaos::schedule::{Schedule, Shrunk, Step};
    let step = |fault: Fault, start_ms, end_ms, role: &str, node| Step {
        fault,
        start_ms,
        end_ms,
        targets: [(role.to_string(), node)].into(),
    };
    let ran = Schedule::new(vec![
        step(Fault::Pause(Target::Leader), 2_347, 7_247, "leader", 1),
        step(Fault::Kill(Target::PartitionLeader), 9_775, 17_080, "partition-leader", 3),
    ]);
    let smallest = Schedule::new(vec![step(Fault::Pause(Target::Leader), 2_347, 4_347, "leader", 1)]);
    let mut fail = scenario("mixed-schedule#1", "schedule", Verdict::Hang, 2_000, true, 0);
    fail.schedule = Some(ran.clone());
    fail.shrunk = Some(Shrunk { original: ran, smallest, tries: 5, exhausted_budget: false });
    let mut pass = scenario("mixed-schedule#2", "schedule", Verdict::Pass, 2_000, false, 0);
    pass.schedule = fail.schedule.clone();
    let r = results(vec![fail, pass]);
    let md = markdown::render(&r, &opts(), GITHUB_COMMENT_LIMIT);
    for want in [
        "1. pause leader 2.347–7.247 s (leader = n1)",
        "2. kill partition-leader 9.775–17.08 s (partition-leader = n3)",
        "Replay: `chronik-chaos chaos --replay results.json --scenario mixed-schedule#1`",
        "**Shrunk** in 5 runs (no smaller schedule still failed) from 2 steps to 1 step:",
        "1. pause leader 2.347–4.347 s (leader = n1)",
        "Replay: `chronik-chaos chaos --replay results.json --scenario mixed-schedule#1~smallest`",
        "- ⚠️ **FLAKY mixed-schedule: 1 of 2 runs did not pass (50%)**",
    ] {
        assert!(md.contains(want), "missing {want:?} in\n{md}");
    }
    // A passing run lists its schedule but needs no replay command.
    assert!(!md.contains("--scenario mixed-schedule#2`"), "{md}");
    let xml = junit::render(&r);
    for want in [
        "name=\"schedule.01\" value=\"kill partition-leader 9.775–17.08 s (partition-leader = n3)\"",
        "name=\"replay\" value=\"chronik-chaos chaos --replay results.json --scenario mixed-schedule#1\"",
        "name=\"shrunk.replay\" value=\"chronik-chaos chaos --replay results.json --scenario mixed-schedule#1~smallest\"",
    ] {
        assert!(xml.contains(want), "missing {want:?} in\n{xml}");
    }
}
