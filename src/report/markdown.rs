//! The Markdown resilience report (`report.md`, also the PR comment and step summary): a
//! headline verdict, one table row per scenario, failures expanded first, passes folded, an
//! inline mermaid chart per failure, baseline deltas, and graceful shrinking under a limit.

use std::fmt::Write as _;
use std::path::Path;

use super::escape::{code_block, md};
use super::{baseline, fit, fmt_ms, phase_latency, plot, RenderOptions};
use crate::liveness::Phase;
use crate::results::{Results, ScenarioResult};
use crate::verdict::Verdict;

/// How much detail a rendering carries; each level is tried in turn until one fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Detail {
    /// Everything: failures expanded, each pass folded with its own details.
    Full,
    /// Passes reduced to one line each.
    PassesSummarized,
    /// Failure details trimmed: long lines cut, no charts, samples and lists shortened.
    Trimmed,
    /// Failures reduced to their first reason; passes to their names.
    Minimal,
}

/// Renders at the richest level that fits in `limit` bytes; if even the minimal rendering
/// does not fit, cuts it at a line boundary with a notice ([`fit::fit_markdown`]).
pub fn render(r: &Results, opts: &RenderOptions, limit: usize) -> String {
    let mut last = String::new();
    for level in [Detail::Full, Detail::PassesSummarized, Detail::Trimmed, Detail::Minimal] {
        last = render_at(r, opts, level);
        if level > Detail::Full {
            last.push_str(&shrink_notice(level));
        }
        if last.len() <= limit {
            return last;
        }
    }
    fit::fit_markdown(&last, limit)
}

fn shrink_notice(level: Detail) -> String {
    let what = match level {
        Detail::Full => return String::new(),
        Detail::PassesSummarized => "passing scenarios are summarized",
        Detail::Trimmed => "passing scenarios are summarized and failure details trimmed",
        Detail::Minimal => "only each failure's first reason is shown",
    };
    format!(
        "\n> [!NOTE]\n> This report was shortened to fit GitHub's comment limit: {what}. The full details are in \
         `junit.xml` and `results.json` among the run's artifacts.\n"
    )
}

fn icon(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "✅",
        Verdict::Fail => "❌",
        Verdict::Hang => "⏳",
        Verdict::Error => "⚠️",
    }
}

/// Renders one level, without the shrink notice.
pub fn render_at(r: &Results, opts: &RenderOptions, level: Detail) -> String {
    let mut o = String::new();
    let worst = r.worst();
    let n = r.scenarios.len();
    let not_passed = r.scenarios.iter().filter(|s| s.verdict != Verdict::Pass).count();
    let headline = if n == 0 {
        "no scenarios ran".to_string()
    } else if n == 1 && not_passed == 0 {
        "the scenario passed".to_string()
    } else if not_passed == 0 {
        format!("all {n} scenarios passed")
    } else {
        format!("{not_passed} of {n} scenarios did not pass")
    };
    let _ = writeln!(o, "# {} Chronik resilience: {} — {headline}\n", icon(worst), worst);
    let count = |v: Verdict| r.scenarios.iter().filter(|s| s.verdict == v).count();
    let _ = writeln!(
        o,
        "**{} FAIL · {} HANG · {} ERROR · {} PASS** · {} · seed `{}` · Toxiproxy: {} · {} → {}\n",
        count(Verdict::Fail),
        count(Verdict::Hang),
        count(Verdict::Error),
        count(Verdict::Pass),
        md(if r.chronik.version.is_empty() { "Chronik (version unknown)" } else { &r.chronik.version }),
        r.seed,
        md(&r.toxiproxy),
        md(&r.started_at),
        md(&r.finished_at),
    );
    if not_passed > 0 {
        o.push_str(
            "<sub>FAIL: acknowledged writes lost, duplicated or misordered, acknowledged without a quorum, or \
             served to readers out of order. HANG: no failover, progress or recovery in time, or a cluster not \
             whole after heal. ERROR: the fault's effect was not measured, or the harness failed.</sub>\n\n",
        );
    }
    table(&mut o, r);

    let failing: Vec<(usize, &ScenarioResult)> =
        r.scenarios.iter().enumerate().filter(|(_, s)| s.verdict != Verdict::Pass).collect();
    let passing: Vec<(usize, &ScenarioResult)> =
        r.scenarios.iter().enumerate().filter(|(_, s)| s.verdict == Verdict::Pass).collect();
    if !failing.is_empty() {
        o.push_str("\n## Did not pass\n");
        for &(i, s) in &failing {
            let _ = writeln!(o, "\n### {} {} — {}\n", icon(s.verdict), md(&s.name), s.verdict);
            if level == Detail::Minimal {
                let first = s.explanation.first().map(String::as_str).unwrap_or("(no explanation recorded)");
                let _ = writeln!(o, "- {}", md(&cut(first, 300)));
                if s.explanation.len() > 1 {
                    let _ = writeln!(o, "- … and {} more reason(s) in the artifacts", s.explanation.len() - 1);
                }
                continue;
            }
            scenario_details(&mut o, i, s, level);
        }
    }
    if !passing.is_empty() {
        let _ = writeln!(o, "\n## Passed ({})\n", passing.len());
        match level {
            Detail::Full => {
                for &(i, s) in &passing {
                    let _ = writeln!(o, "<details><summary>✅ {}</summary>\n", md(&s.name));
                    scenario_details(&mut o, i, s, Detail::Full);
                    o.push_str("\n</details>\n");
                }
            }
            Detail::PassesSummarized | Detail::Trimmed => {
                o.push_str("<details><summary>Passing scenarios, one line each</summary>\n\n");
                for &(_, s) in &passing {
                    let _ = writeln!(o, "- ✅ **{}**: {}", md(&s.name), md(&one_line(s)));
                }
                o.push_str("\n</details>\n");
            }
            Detail::Minimal => {
                let names: Vec<String> = passing.iter().map(|(_, s)| md(&s.name)).collect();
                let _ = writeln!(o, "{}", names.join(", "));
            }
        }
    }
    if let Some(base) = &opts.baseline {
        o.push('\n');
        o.push_str(&baseline::render_markdown(&baseline::compare(r, base, opts.tolerance), opts.tolerance));
    }
    o.push('\n');
    if let Some(url) = opts.artifacts_url.as_deref().filter(|u| safe_url(u)) {
        let _ = writeln!(
            o,
            "Full results (`results.json`, `junit.xml`, histories, node logs, SVG plots): [run artifacts]({url})"
        );
    } else {
        o.push_str(
            "Full results: `results.json`, `junit.xml`, histories, node logs and SVG plots in the output directory.\n",
        );
    }
    let _ = writeln!(o, "\n<sub>{} · rendered from results.json</sub>", md(&r.tool));
    o
}

/// Only plain http(s) URLs without characters that could end the link or start markup.
fn safe_url(u: &str) -> bool {
    (u.starts_with("https://") || u.starts_with("http://"))
        && u.chars().all(|c| c.is_ascii_graphic() && !"()<>[]`\"'\\|".contains(c))
}

fn table(o: &mut String, r: &Results) {
    o.push_str(
        "| Scenario | Verdict | Acked | Lost | Dup | Unseen | p50 / p99 before | p50 / p99 under fault | \
         Longest unavailable | Recovered after | Fault proven |\n",
    );
    o.push_str("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|:-:|\n");
    let mut rows: Vec<&ScenarioResult> = r.scenarios.iter().collect();
    // Failures first (worst first), then passes, each in run order.
    rows.sort_by_key(|s| std::cmp::Reverse(s.verdict));
    for s in rows {
        let a = &s.anomalies;
        let lat = |p: Phase| {
            s.liveness
                .as_ref()
                .and_then(|l| phase_latency(l, p))
                .map(|x| format!("{} / {}", fmt_ms(x.p50_ms), fmt_ms(x.p99_ms)))
                .unwrap_or_else(|| "—".into())
        };
        let unavail = s.liveness.as_ref().map_or("—".into(), |l| fmt_ms(l.longest_unavailability_ms));
        let recovered = recovery_text(s.recovery());
        let _ = writeln!(
            o,
            "| {} | {} {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            md(&s.name),
            icon(s.verdict),
            s.verdict,
            s.counts.acked,
            bold_nonzero(a.lost.len()),
            bold_nonzero(a.duplicated.len()),
            a.unseen.len(),
            lat(Phase::Steady),
            lat(Phase::Fault),
            unavail,
            recovered,
            if s.fidelity.proven { "yes" } else { "**no**" },
        );
    }
}

/// `850 ms`, `never`, or `—` without a fault.
pub fn recovery_text(r: crate::results::Recovery) -> String {
    match r {
        crate::results::Recovery::NotApplicable => "—".into(),
        crate::results::Recovery::Never => "never".into(),
        crate::results::Recovery::AfterMs(ms) => fmt_ms(ms),
    }
}

fn bold_nonzero(n: usize) -> String {
    if n > 0 {
        format!("**{n}**")
    } else {
        "0".into()
    }
}

/// One line of key figures for a summarized pass.
fn one_line(s: &ScenarioResult) -> String {
    let mut parts = vec![format!("{} acked", s.counts.acked)];
    if let Some(l) = &s.liveness {
        if let Some(f) = phase_latency(l, Phase::Fault) {
            parts.push(format!("p99 under fault {}", fmt_ms(f.p99_ms)));
        }
        parts.push(format!("longest unavailable {}", fmt_ms(l.longest_unavailability_ms)));
    }
    parts.push(if s.fidelity.proven { "fault proven".into() } else { "fault NOT proven".into() });
    parts.join(", ")
}

/// Cuts `s` to at most `max` bytes at a char boundary, marking the cut.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} … ({} more bytes)", &s[..end], s.len() - end)
}

/// The last two components of a path (e.g. `histories/x.json`): results hold absolute paths
/// from the machine that ran, which mean nothing to a reader elsewhere.
fn short(p: &Path) -> String {
    let parts: Vec<_> = p.components().rev().take(2).collect();
    parts.into_iter().rev().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

fn scenario_details(o: &mut String, i: usize, s: &ScenarioResult, level: Detail) {
    let trimmed = level >= Detail::Trimmed;
    let line_max = if trimmed { 400 } else { 4000 };
    let _ = writeln!(o, "{}\n", md(&s.description));
    if !s.explanation.is_empty() {
        o.push_str("**Why:**\n\n");
        for e in &s.explanation {
            let _ = writeln!(o, "- {}", md(&cut(e, line_max)));
        }
        o.push('\n');
    }
    let targets: Vec<String> = s.targets.iter().map(|(role, n)| format!("{} = n{n}", md(role))).collect();
    let _ = writeln!(
        o,
        "Seed `{}` · source {} · targets: {}\n",
        s.seed,
        md(&s.source),
        if targets.is_empty() { "none".to_string() } else { targets.join(", ") }
    );
    if !s.timeline.is_empty() {
        o.push_str("| t | Fault timeline |\n|--:|---|\n");
        for e in &s.timeline {
            let _ = writeln!(o, "| {} | {} |", fmt_ms(e.t_ms), md(&cut(&e.what, line_max)));
        }
        o.push('\n');
    }
    let fid = &s.fidelity;
    let _ = writeln!(o, "**Fault proven: {}**", if fid.proven { "yes" } else { "no" });
    for e in fid.evidence.iter().take(if trimmed { 3 } else { 50 }) {
        let _ = writeln!(o, "- {}", md(&cut(e, line_max)));
    }
    for p in &fid.problems {
        let _ = writeln!(o, "- ⚠️ {}", md(&cut(p, line_max)));
    }
    o.push('\n');
    if let Some(c) = &s.checks {
        checks(o, c);
    }
    let summary = s.anomalies.summary();
    if !summary.is_empty() {
        o.push_str("**History checker:**\n");
        for a in &summary {
            let _ = writeln!(o, "- {}", md(&cut(a, line_max)));
        }
        o.push('\n');
    }
    if !s.toxics.is_empty() {
        if trimmed {
            let _ = writeln!(o, "{} toxics placed (listed in `junit.xml`).\n", s.toxics.len());
        } else {
            let _ = writeln!(o, "<details><summary>{} toxics placed</summary>\n", s.toxics.len());
            for t in &s.toxics {
                let _ = writeln!(o, "- {}", md(t));
            }
            o.push_str("\n</details>\n\n");
        }
    }
    if !trimmed && s.verdict != Verdict::Pass {
        if let Some(chart) = plot::mermaid(s) {
            o.push_str(&chart);
            o.push('\n');
        }
    }
    if s.liveness.is_some() {
        let _ = writeln!(o, "Plot: `plots/{}`", plot::file_name(i, s));
    }
    if let Some(h) = &s.history_file {
        let _ = writeln!(o, "History: {}", md(&short(h)));
    }
    o.push('\n');
    for f in &s.startup_failures {
        o.push_str("<details><summary>A cluster start-up that never became ready (a finding)</summary>\n\n");
        let text = if trimmed { tail_lines(f, 15) } else { tail_lines(f, 80) };
        o.push_str(&code_block(&text, "text"));
        o.push_str("\n</details>\n\n");
    }
}

/// The topic as read back, the quorum rule's count, and one row per partition.
fn checks(o: &mut String, c: &crate::results::Checks) {
    let _ = writeln!(
        o,
        "Topic `{}`: replication factor {}, min.insync.replicas {}. Acknowledged during a fault and checked for a quorum: {} ({} without one, {} indeterminate).\n",
        md(&c.topic.name),
        md(&c.topic.replication_factor.describe()),
        md(&c.topic.min_insync_replicas.describe()),
        c.quorum.checked,
        c.quorum.violations.len(),
        c.quorum.indeterminate
    );
    if c.partitions.is_empty() {
        return;
    }
    o.push_str("| Partition | Acked | During fault | Longest gap | Leader before → lost at | Failover | Recovery |\n");
    o.push_str("|--:|--:|--:|--:|---|--:|--:|\n");
    let opt_ms = |v: Option<f64>| v.map(fmt_ms).unwrap_or_else(|| "—".into());
    for p in &c.partitions {
        let leader = match (p.leader_before, p.leader_lost_at_us) {
            (Some(l), Some(t)) => format!("n{l} → {}", fmt_ms(t as f64 / 1e3)),
            (Some(l), None) => format!("n{l}"),
            _ => "—".into(),
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} |",
            p.partition,
            p.acked,
            p.acked_during_fault,
            fmt_ms(p.longest_gap_ms),
            leader,
            opt_ms(p.failover_ms),
            opt_ms(p.recovery_ms)
        );
    }
    o.push('\n');
}

fn tail_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let start = lines.len().saturating_sub(n);
    let mut out = String::new();
    if start > 0 {
        let _ = writeln!(out, "[… {start} earlier lines]");
    }
    out.push_str(&lines[start..].join("\n"));
    out.chars().take(if n > 20 { 16_000 } else { 3_000 }).collect()
}
