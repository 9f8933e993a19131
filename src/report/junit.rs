//! JUnit XML from `results.json`: one testsuite per run, one testcase per scenario
//! (classname = family, name = scenario), FAIL → `<failure>`, ERROR/HANG → `<error>`, with
//! properties for the seed, the fault timeline, the toxics and the key figures (the consumer
//! group's and keyed writes' too, when the scenario had them).
//!
//! Written with quick-xml directly rather than the junit-report crate: junit-report 0.9 cannot
//! write `<properties>`, and it puts text in CDATA without splitting `]]>` or removing control
//! characters, so a hostile scenario name or log line could break the file (docs/reports.md).

use std::io::Write;

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use super::escape::xml_text;
use super::{fmt_ms, phase_latency};
use crate::checker::group::GroupReport;
use crate::liveness::Phase;
use crate::results::{Results, ScenarioResult};
use crate::verdict::Verdict;

/// Counts as a JUnit consumer will count them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct JunitCounts {
    pub tests: usize,
    pub failures: usize,
    pub errors: usize,
    /// Not applicable to this cluster (JUnit's `skipped`).
    pub skipped: usize,
}

pub fn counts(r: &Results) -> JunitCounts {
    let mut c = JunitCounts { tests: r.scenarios.len(), ..Default::default() };
    for s in &r.scenarios {
        match s.verdict {
            Verdict::Fail => c.failures += 1,
            Verdict::Error | Verdict::Hang => c.errors += 1,
            Verdict::NotApplicable => c.skipped += 1,
            Verdict::Pass => {}
        }
    }
    c
}

/// Renders the whole document.
pub fn render(r: &Results) -> String {
    let mut buf = Vec::new();
    write(r, &mut buf).expect("writing to memory cannot fail");
    String::from_utf8(buf).expect("quick-xml writes UTF-8")
}

fn write<W: Write>(r: &Results, sink: W) -> std::io::Result<()> {
    let c = counts(r);
    let secs = |ms: f64| format!("{:.3}", ms / 1e3);
    let total_ms: f64 = r.scenarios.iter().map(|s| s.duration_ms).sum();
    let (tests, failures, errors, skipped, time) =
        (c.tests.to_string(), c.failures.to_string(), c.errors.to_string(), c.skipped.to_string(), secs(total_ms));
    // The same totals on <testsuites> and on the one <testsuite>, which also has a timestamp.
    let totals = [
        ("name", "chronik-chaos"),
        ("tests", tests.as_str()),
        ("failures", failures.as_str()),
        ("errors", errors.as_str()),
        ("skipped", skipped.as_str()),
        ("time", time.as_str()),
    ];
    let timestamp = xml_text(&r.started_at);
    let mut w = Writer::new_with_indent(sink, b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.create_element("testsuites").with_attributes(totals).write_inner_content(|w| {
        w.create_element("testsuite")
            .with_attributes(totals.into_iter().chain([("timestamp", timestamp.as_str())]))
            .write_inner_content(|w| {
                let mut props = vec![
                    ("seed".to_string(), r.seed.to_string()),
                    ("tool".to_string(), r.tool.clone()),
                    ("chronik.version".to_string(), r.chronik.version.clone()),
                    ("chronik.binary".to_string(), r.chronik.binary.display().to_string()),
                    ("toxiproxy".to_string(), r.toxiproxy.clone()),
                    ("finished_at".to_string(), r.finished_at.clone()),
                ];
                props.extend(flaky_properties(r));
                let props: Vec<(&str, String)> = props.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
                properties(w, &props)?;
                for s in &r.scenarios {
                    testcase(w, s)?;
                }
                Ok(())
            })?;
        Ok(())
    })?;
    Ok(())
}

/// FLAKY, counted apart (as cargo-nextest does): how many scenarios, and each one's line
/// (`flaky.kill-leader` = `FLAKY kill-leader: 1 of 4 runs did not pass (25%)`).
fn flaky_properties(r: &Results) -> Vec<(String, String)> {
    let flaky = r.flaky();
    let mut out = vec![("flaky".to_string(), flaky.len().to_string())];
    out.extend(flaky.iter().map(|f| (format!("flaky.{}", f.scenario), f.to_string())));
    out
}

fn properties<W: Write>(w: &mut Writer<W>, props: &[(&str, String)]) -> std::io::Result<()> {
    w.create_element("properties").write_inner_content(|w| {
        for (name, value) in props {
            w.create_element("property")
                .with_attributes([("name", xml_text(name).as_str()), ("value", xml_text(value).as_str())])
                .write_empty()?;
        }
        Ok(())
    })?;
    Ok(())
}

/// The key figures of a scenario, as `(name, value)` pairs (also used as JUnit properties).
pub fn key_figures(s: &ScenarioResult) -> Vec<(String, String)> {
    let a = &s.anomalies;
    let mut out = vec![
        ("verdict".to_string(), s.verdict.to_string()),
        ("seed".to_string(), s.seed.to_string()),
        ("source".to_string(), s.source.clone()),
        ("writes.sent".to_string(), s.counts.sends.to_string()),
        ("writes.acked".to_string(), s.counts.acked.to_string()),
        ("writes.acked_during_fault".to_string(), s.counts.acked_during_fault.to_string()),
        ("writes.lost".to_string(), a.lost.len().to_string()),
        ("writes.duplicated".to_string(), a.duplicated.len().to_string()),
        ("writes.unseen".to_string(), a.unseen.len().to_string()),
        ("anomalies.safety".to_string(), a.count_safety().to_string()),
        ("fault.proven".to_string(), s.fidelity.proven.to_string()),
    ];
    for (role, node) in &s.targets {
        out.push((format!("target.{role}"), format!("n{node}")));
    }
    if let Some(l) = &s.liveness {
        for (phase, key) in [(Phase::Steady, "steady"), (Phase::Fault, "fault"), (Phase::Recovery, "recovery")] {
            if let Some(p) = phase_latency(l, phase) {
                out.push((format!("latency.{key}.p50"), fmt_ms(p.p50_ms)));
                out.push((format!("latency.{key}.p99"), fmt_ms(p.p99_ms)));
            }
        }
        out.push(("longest_unavailability".to_string(), fmt_ms(l.longest_unavailability_ms)));
        out.push(("heal_to_recovered".to_string(), super::markdown::recovery_text(s.recovery())));
    }
    if let Some(c) = &s.checks {
        if let Some(g) = &c.group {
            out.extend(group_figures(g));
        }
        if !c.keys.is_empty() {
            let k = &c.keys;
            out.push(("keys.written".to_string(), k.keys.to_string()));
            out.push(("keys.reorders".to_string(), k.reorders.len().to_string()));
            out.push(("keys.split".to_string(), k.split_keys.len().to_string()));
        }
        if let Some(t) = &c.txn {
            for (k, v) in [
                ("txn.committed", t.committed),
                ("txn.aborted", t.aborted),
                ("txn.failed", t.failed),
                ("txn.indeterminate", t.unknown),
                ("txn.committed_values_read", t.committed_values_read),
                ("txn.violations", t.violations()),
                ("txn.unseen", t.unseen.len()),
            ] {
                out.push((k.to_string(), v.to_string()));
            }
        }
    }
    if let Some(sched) = &s.schedule {
        for (i, step) in sched.describe().into_iter().enumerate() {
            out.push((format!("schedule.{i:02}"), step));
        }
        if s.verdict > Verdict::NotApplicable {
            out.push((
                "replay".to_string(),
                format!("chronik-chaos chaos --replay results.json --scenario {}", s.name),
            ));
        }
        if let Some(sh) = &s.shrunk {
            for (i, step) in sh.smallest.describe().into_iter().enumerate() {
                out.push((format!("shrunk.{i:02}"), step));
            }
            out.push((
                "shrunk.replay".to_string(),
                format!("chronik-chaos chaos --replay results.json --scenario {}~smallest", s.name),
            ));
        }
    }
    for (i, e) in s.timeline.iter().enumerate() {
        out.push((format!("timeline.{i:02}"), format!("{} {}", fmt_ms(e.t_ms), e.what)));
    }
    for (i, t) in s.toxics.iter().enumerate() {
        out.push((format!("toxic.{i:02}"), t.clone()));
    }
    out
}

/// The consumer group's figures and rule counts, as `group.*` properties.
fn group_figures(g: &GroupReport) -> Vec<(String, String)> {
    let c = &g.convergence;
    let settled = c.converged_us.map_or("never".to_string(), |t| fmt_ms(t.saturating_sub(c.from_us) as f64 / 1e3));
    let mut out = vec![("group.members", g.members.to_string())];
    if !g.commit_mode.trim().is_empty() {
        out.push(("group.commit_mode", g.commit_mode.clone()));
    }
    out.extend([
        ("group.consumed", g.consumed.to_string()),
        ("group.polls", g.polls.to_string()),
        ("group.duplicates", g.duplicates.to_string()),
        ("group.rebalances", g.rebalances.to_string()),
        ("group.commits_ok", g.commits_ok.to_string()),
        ("group.commits_failed", g.commits_failed.to_string()),
        ("group.longest_stall", fmt_ms(g.longest_stall_ms)),
        ("group.settled_after", settled),
        ("group.drained", g.drained.to_string()),
        ("group.skipped", g.skipped.len().to_string()),
        ("group.not_reached", g.not_reached.len().to_string()),
        ("group.commit_regressions", g.commit_regressions.len().to_string()),
        ("group.resume_skips", g.resume_skips.len().to_string()),
        ("group.jumps", g.jumps.len().to_string()),
        ("group.wrong_values", g.wrong_values.len().to_string()),
    ]);
    out.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn testcase<W: Write>(w: &mut Writer<W>, s: &ScenarioResult) -> std::io::Result<()> {
    let time = format!("{:.3}", s.duration_ms / 1e3);
    let (name, class) = (xml_text(&s.name), xml_text(&s.family));
    w.create_element("testcase")
        .with_attributes([("name", name.as_str()), ("classname", class.as_str()), ("time", time.as_str())])
        .write_inner_content(|w| {
            let figures = key_figures(s);
            let props: Vec<(&str, String)> = figures.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            properties(w, &props)?;
            let element = match s.verdict {
                Verdict::Pass => None,
                Verdict::Fail => Some("failure"),
                Verdict::Error | Verdict::Hang => Some("error"),
                Verdict::NotApplicable => Some("skipped"),
            };
            if let Some(element) = element {
                // One line: parsers fold newlines in attributes anyway; the body has every line.
                let first = s.explanation.first().map(String::as_str).unwrap_or("(no explanation recorded)");
                let message = xml_text(&first.replace(['\r', '\n'], " "));
                let body = xml_text(&details(s));
                let verdict = s.verdict.to_string();
                w.create_element(element)
                    .with_attributes([("type", verdict.as_str()), ("message", message.as_str())])
                    .write_text_content(BytesText::new(&body))?;
            } else if !s.startup_failures.is_empty() {
                // Passed after a retried start-up: Surefire's flakyError (a pass that needed a
                // rerun), which cargo-nextest writes too and JUnit readers count as a pass.
                let message = format!(
                    "passed after {} cluster start-up(s) never became ready and were retried",
                    s.startup_failures.len()
                );
                let body: String = s.startup_failures.iter().map(|f| format!("- start-up: {f}\n")).collect();
                w.create_element("flakyError")
                    .with_attributes([("type", "startup"), ("message", message.as_str())])
                    .write_text_content(BytesText::new(&xml_text(&body)))?;
            }
            let out = xml_text(&system_out(s));
            w.create_element("system-out").write_text_content(BytesText::new(&out))?;
            Ok(())
        })?;
    Ok(())
}

/// The failure body: every explanation line, the fault's evidence and problems, start-up findings.
fn details(s: &ScenarioResult) -> String {
    let mut out = String::new();
    for line in &s.explanation {
        out.push_str(&format!("- {line}\n"));
    }
    for p in &s.fidelity.problems {
        out.push_str(&format!("- fault problem: {p}\n"));
    }
    for a in s.anomalies.summary() {
        out.push_str(&format!("- {a}\n"));
    }
    for f in &s.startup_failures {
        out.push_str(&format!("- start-up: {f}\n"));
    }
    out
}

fn system_out(s: &ScenarioResult) -> String {
    let mut out = format!("{}\n\nTimeline:\n", s.description);
    for e in &s.timeline {
        out.push_str(&format!("  {:>9}  {}\n", fmt_ms(e.t_ms), e.what));
    }
    out.push_str("Fault evidence:\n");
    for e in &s.fidelity.evidence {
        out.push_str(&format!("  {e}\n"));
    }
    if let Some(h) = &s.history_file {
        out.push_str(&format!("History: {}\n", h.display()));
    }
    for l in &s.node_logs {
        out.push_str(&format!("Node log: {}\n", l.display()));
    }
    out
}
