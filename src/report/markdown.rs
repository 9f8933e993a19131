//! The Markdown resilience report (`report.md`, also the PR comment and step summary): a first
//! screen that fits a comment's width (headline, then one row per scenario: verdict, why, the
//! figure that matters), then every figure and each scenario's details folded (with the
//! consumer group's figures when one ran), bulk of passing scenarios left to the artifacts,
//! baseline deltas, and graceful shrinking under a limit.

use std::fmt::Write as _;
use std::path::Path;

use super::escape::{code_block, html_inline, md};
use super::{baseline, fit, fmt_ms, phase_latency, plot, RenderOptions};
use crate::checker::group::GroupReport;
use crate::checker::keys::KeyReport;
use crate::checker::txn::TxnReport;
use crate::liveness::Phase;
use crate::results::{Recovery, Results, ScenarioResult};
use crate::verdict::Verdict;

/// How much detail a rendering carries; each level is tried in turn until one fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Detail {
    /// Everything: each scenario folded with its own details.
    Full,
    /// Passes reduced to one line each.
    PassesSummarized,
    /// Failure details trimmed: long lines cut, no charts, samples and lists shortened.
    Trimmed,
    /// Failures reduced to their first reason; passes to their names; no table of figures.
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
        Detail::Minimal => "only each failure's first reason is shown, without the table of figures",
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
        Verdict::NotApplicable => "➖",
    }
}

/// The first screen's reading of one scenario, built only from its fields in `results.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Why {
    /// Why it got its verdict, in a few words with their number (`1 acked write lost`,
    /// `no failover for p0 (14.0 s)`, `readers served out of order`); for a pass, how it
    /// recovered (`recovered in 1.00 s`).
    pub phrase: String,
    /// The one figure that matters for that reason (`674 of 2004 acked affected`,
    /// `4 skips, 8 rewinds`, `never recovered`); for a pass, p99 under fault, or what the
    /// consumer group was handed (`consumed 1500, 0 dup`) in a queue scenario.
    pub figure: String,
    /// How many more reasons the scenario's details list (notes and findings not counted).
    pub more: usize,
}

/// Why `s` got its verdict, for the first screen. Phrases come from the structured fields
/// (anomalies, checks, fidelity, liveness, counts) in the order the verdict lists its reasons;
/// when none applies (a harness failure, a rule whose limit the results do not hold), from
/// the first reason recorded, shortened.
pub fn why(s: &ScenarioResult) -> Why {
    let reasons = reasons(s);
    let structured = match s.verdict {
        Verdict::Pass => Some(pass_why(s)),
        Verdict::Fail => fail_why(s),
        Verdict::Hang => hang_why(s),
        // A harness failure is recorded unprefixed before any prefixed reason: it comes first.
        Verdict::Error if reasons.iter().any(|r| level_prefix(r).is_some()) && level_prefix(reasons[0]).is_none() => {
            None
        }
        Verdict::Error => error_why(s),
        Verdict::NotApplicable => Some(("not applicable to this cluster".to_string(), String::new())),
    };
    let (phrase, figure) = structured.unwrap_or_else(|| fallback_why(s, &reasons));
    let more = if s.verdict == Verdict::Pass { 0 } else { reasons.len().saturating_sub(1) };
    Why { phrase, figure, more }
}

/// The explanation lines that are reasons: not notes, not findings about start-up.
fn reasons(s: &ScenarioResult) -> Vec<&str> {
    s.explanation
        .iter()
        .map(String::as_str)
        .filter(|e| !e.starts_with("Note:") && !e.starts_with("Finding:") && !e.trim().is_empty())
        .collect()
}

fn level_prefix(reason: &str) -> Option<&'static str> {
    ["FAIL: ", "ERROR: ", "HANG: ", "N/A: "].into_iter().find(|p| reason.starts_with(p))
}

/// `1 acked write`, `18 acked writes`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn pass_why(s: &ScenarioResult) -> (String, String) {
    let phrase = match s.recovery() {
        Recovery::AfterMs(ms) => format!("recovered in {}", fmt_ms(ms)),
        Recovery::Never => "never recovered".to_string(),
        Recovery::NotApplicable => format!("no fault, {}", count(s.counts.acked, "write acked", "writes acked")),
    };
    // A queue scenario is about what its consumer group was handed.
    if let Some(g) = group(s) {
        return (phrase, format!("consumed {}, {} dup", g.consumed, g.duplicates));
    }
    // A transactional one, about its transactions.
    if let Some(t) = txn(s) {
        return (phrase, format!("{} committed, {} aborted", t.committed, t.aborted));
    }
    let faulted = !matches!(s.recovery(), Recovery::NotApplicable);
    let figure = match &s.liveness {
        Some(l) => match (phase_latency(l, Phase::Fault), phase_latency(l, Phase::Steady)) {
            (Some(f), _) if faulted => format!("p99 under fault {}", fmt_ms(f.p99_ms)),
            // A baseline's hold has no fault: its latency is the steady one.
            (Some(f), _) => format!("p99 {}", fmt_ms(f.p99_ms)),
            (None, Some(st)) => format!("p99 {}", fmt_ms(st.p99_ms)),
            (None, None) => format!("longest gap {}", fmt_ms(l.longest_unavailability_ms)),
        },
        None => "—".to_string(),
    };
    (phrase, figure)
}

fn fail_why(s: &ScenarioResult) -> Option<(String, String)> {
    let a = &s.anomalies;
    let affected = format!("{} of {} acked affected", a.count_safety(), s.counts.acked);
    // The checker's rules in the order its summary lists them; duplicates last, since without
    // idempotence they are reported but fail nothing.
    let safety = [
        (a.lost.len(), "acked write lost", "acked writes lost"),
        (a.inconsistent.len(), "offset read with two values", "offsets read with two values"),
        (a.non_monotonic.len(), "write acked out of order", "writes acked out of order"),
        (a.real_time_reorder.len(), "write reordered against real time", "writes reordered against real time"),
        (a.invalid_offset.len(), "write acked at an invalid offset", "writes acked at an invalid offset"),
        (a.phantom.len(), "phantom read", "phantom reads"),
        (a.aborted_read.len(), "failed write read back", "failed writes read back"),
        (a.duplicated.len(), "acked write duplicated", "acked writes duplicated"),
    ];
    if let Some((n, one, many)) = safety.into_iter().find(|(n, ..)| *n > 0) {
        return Some((count(n, one, many), affected));
    }
    if let Some(c) = &s.checks {
        let q = &c.quorum;
        if !q.violations.is_empty() {
            return Some((
                format!("acked without quorum ({})", q.violations.len()),
                format!("{} of {} acked under fault", q.violations.len(), q.checked),
            ));
        }
        let p = &c.polls;
        if !p.skips.is_empty() || !p.rewinds.is_empty() {
            return Some((
                "readers served out of order".to_string(),
                format!("{}, {}", count(p.skips.len(), "skip", "skips"), count(p.rewinds.len(), "rewind", "rewinds")),
            ));
        }
    }
    if !a.unknown_offset.is_empty() {
        let n = a.unknown_offset.len();
        return Some((
            count(n, "write acked at offset -1", "writes acked at offset -1"),
            format!("{n} of {} acked", s.counts.acked),
        ));
    }
    group_fail_why(s).or_else(|| key_fail_why(s)).or_else(|| txn_fail_why(s))
}

/// The transaction report, when the scenario ran transactions.
fn txn(s: &ScenarioResult) -> Option<&TxnReport> {
    s.checks.as_ref().and_then(|c| c.txn.as_ref())
}

/// The transaction rules, in the order the verdict lists them.
fn txn_fail_why(s: &ScenarioResult) -> Option<(String, String)> {
    let t = txn(s)?;
    let of_committed = |n: usize| format!("{n} of {} committed", t.committed);
    let rules = [
        (t.aborted_reads.len(), "aborted write read", "aborted writes read", format!("{} aborted", t.aborted)),
        (t.dirty_reads.len(), "dirty read", "dirty reads", format!("{} read", t.values_read)),
        (t.partial.len(), "transaction partly visible", "transactions partly visible", of_committed(t.partial.len())),
        (t.lost.len(), "committed transaction lost", "committed transactions lost", of_committed(t.lost.len())),
        (t.misordered.len(), "transaction out of order", "transactions out of order", of_committed(t.misordered.len())),
        (
            t.duplicated.len(),
            "transactional value read twice",
            "transactional values read twice",
            format!("{} read", t.values_read),
        ),
        (
            t.inconsistent.len(),
            "offset read with two values",
            "offsets read with two values",
            format!("{} read", t.values_read),
        ),
        (
            t.phantom.len(),
            "phantom transactional read",
            "phantom transactional reads",
            format!("{} read", t.values_read),
        ),
    ];
    rules.into_iter().find(|(n, ..)| *n > 0).map(|(n, one, many, figure)| (count(n, one, many), figure))
}

fn txn_hang_why(s: &ScenarioResult) -> Option<(String, String)> {
    let t = txn(s)?;
    if t.committed == 0 {
        return Some(("no transaction committed".to_string(), format!("{} aborted, {} failed", t.aborted, t.failed)));
    }
    (!t.unseen.is_empty()).then(|| {
        (
            count(t.unseen.len(), "committed transaction unseen", "committed transactions unseen"),
            format!("{} committed", t.committed),
        )
    })
}

/// The consumer group's report, when the scenario ran one.
fn group(s: &ScenarioResult) -> Option<&GroupReport> {
    s.checks.as_ref().and_then(|c| c.group.as_ref())
}

/// The group's safety rules, in the order the verdict lists them.
fn group_fail_why(s: &ScenarioResult) -> Option<(String, String)> {
    let g = group(s)?;
    if !g.skipped.is_empty() {
        let n = g.skipped.len();
        return Some((
            count(n, "write never delivered to the group", "writes never delivered to the group"),
            format!("{n} of {} acked", s.counts.acked),
        ));
    }
    if let Some(r) = g.commit_regressions.first() {
        return Some((
            "committed offset went back".to_string(),
            format!(
                "{}, p{} {} → {}",
                count(g.commit_regressions.len(), "regression", "regressions"),
                r.partition,
                r.before,
                r.after
            ),
        ));
    }
    if let Some(r) = g.resume_skips.first() {
        // What it had to start at or before: the commit, or the log's start when none was made.
        let bound = match r.committed {
            Some(c) if c >= r.log_start => c.to_string(),
            _ => format!("log start {}", r.log_start),
        };
        return Some((
            "member resumed past commit".to_string(),
            format!(
                "{}, p{} at {} past {bound}",
                count(g.resume_skips.len(), "takeover", "takeovers"),
                r.partition,
                r.first_polled
            ),
        ));
    }
    if !g.jumps.is_empty() {
        let back = g.jumps.iter().filter(|j| j.to <= j.from).count();
        let skips = g.jumps.len() - back;
        return Some((
            "group served out of order".to_string(),
            format!("{}, {}", count(skips, "skip", "skips"), count(back, "rewind", "rewinds")),
        ));
    }
    if !g.wrong_values.is_empty() {
        let n = g.wrong_values.len();
        return Some((
            count(n, "wrong value served to the group", "wrong values served to the group"),
            format!("{n} of {} consumed", g.consumed),
        ));
    }
    None
}

fn key_fail_why(s: &ScenarioResult) -> Option<(String, String)> {
    let k = &s.checks.as_ref()?.keys;
    if k.reorders.is_empty() {
        return None;
    }
    Some((
        "key order broken".to_string(),
        format!("{}, {}", count(k.reorders.len(), "reorder", "reorders"), count(k.keys, "key", "keys")),
    ))
}

/// The group's liveness rules, after every producer rule (as the verdict lists them).
fn group_hang_why(s: &ScenarioResult) -> Option<(String, String)> {
    let g = group(s)?;
    if !g.not_reached.is_empty() {
        let n = g.not_reached.len();
        return Some((
            format!("group never got to {}", count(n, "write", "writes")),
            format!("{n} of {} acked", s.counts.acked),
        ));
    }
    if g.convergence.converged_us.is_none() {
        let figure = match g.convergence.problems.len() {
            0 => "never settled".to_string(),
            n => count(n, "partition without one owner", "partitions without one owner"),
        };
        return Some(("group did not settle".to_string(), figure));
    }
    None
}

fn hang_why(s: &ScenarioResult) -> Option<(String, String)> {
    let recovery = match s.recovery() {
        Recovery::AfterMs(ms) => format!("recovered in {}", fmt_ms(ms)),
        Recovery::Never => "never recovered".to_string(),
        Recovery::NotApplicable => "—".to_string(),
    };
    if let Some(c) = s.checks.as_ref() {
        // Without a fault there is no before, during or after to judge (a baseline).
        let judged = if c.faulted { c.partitions.as_slice() } else { &[] };
        for p in judged {
            let gap = fmt_ms(p.longest_gap_ms);
            if p.acked_before_fault == 0 {
                return Some((
                    format!("p{} served nothing before the fault", p.partition),
                    format!("p{} longest gap {gap}", p.partition),
                ));
            }
            if p.quorum_possible_throughout && p.acked_during_fault == 0 {
                return Some((format!("no failover for p{} ({gap})", p.partition), recovery));
            }
            if p.recovery_ms.is_none() {
                return Some((
                    format!("p{} never recovered after heal", p.partition),
                    format!("p{} longest gap {gap}", p.partition),
                ));
            }
        }
        let m = &c.metadata;
        if let Some(first) = m.stale.first() {
            let late = first.named_at_us.saturating_sub(first.lost_at_us) as f64 / 1e3;
            return Some((format!("stale leader for p{} ({})", first.partition, fmt_ms(late)), recovery));
        }
        if !m.split_after_heal.is_empty() {
            return Some((
                "cluster not whole after heal".to_string(),
                count(m.split_after_heal.len(), "disagreement", "disagreements"),
            ));
        }
    }
    let unseen = s.anomalies.unseen.len();
    if unseen > 0 {
        return Some((
            count(unseen, "acked write unseen", "acked writes unseen"),
            format!("{unseen} of {} acked", s.counts.acked),
        ));
    }
    if let Some(c) = s.checks.as_ref().filter(|c| !c.polls.errors.is_empty()) {
        return Some((
            "readers given errors".to_string(),
            count(c.polls.errors.len(), "kind of error", "kinds of error"),
        ));
    }
    group_hang_why(s).or_else(|| txn_hang_why(s))
}

fn error_why(s: &ScenarioResult) -> Option<(String, String)> {
    let f = &s.fidelity;
    // Evidence or problems mean a fault was placed and measured; neither means it never got that far.
    let placed = !f.evidence.is_empty() || !f.problems.is_empty();
    if !f.proven && placed {
        let figure = if f.problems.is_empty() {
            "effect not measured".to_string()
        } else {
            count(f.problems.len(), "contradiction", "contradictions")
        };
        return Some(("fault not proven".to_string(), figure));
    }
    if s.counts.sends == 0 && s.liveness.is_some() {
        return Some(("workload sent nothing".to_string(), "0 writes sent".to_string()));
    }
    None
}

/// The first reason as recorded, shortened to its lead (before the first `: `), lower-cased.
fn fallback_why(s: &ScenarioResult, reasons: &[&str]) -> (String, String) {
    let figure = match &s.liveness {
        Some(l) => format!("longest gap {}", fmt_ms(l.longest_unavailability_ms)),
        None => "—".to_string(),
    };
    let Some(first) = reasons.first() else { return ("no reason recorded".to_string(), figure) };
    let text = level_prefix(first).map_or(*first, |p| &first[p.len()..]);
    // "The harness could not complete this scenario: <what stopped it>: <detail>" says what
    // stopped it in its second clause: that clause is the phrase.
    const HARNESS: &str = "The harness could not complete this scenario: ";
    let text = match text.strip_prefix(HARNESS) {
        Some(rest) if !rest.trim().is_empty() => rest,
        _ => text,
    };
    let line = text.lines().next().unwrap_or("");
    let lead = match line.find(": ") {
        Some(i) if i >= 4 => &line[..i],
        _ => line,
    };
    let lead = lead.trim_end_matches('.');
    let mut chars = lead.chars();
    let phrase = match (chars.next(), chars.clone().next()) {
        (Some(c), Some(d)) if c.is_uppercase() && d.is_lowercase() => c.to_lowercase().chain(chars).collect(),
        _ => lead.to_string(),
    };
    (cut_chars(&phrase, 60), figure)
}

/// At most `max` characters, with `…` when cut.
fn cut_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max - 1).collect::<String>() + "…"
    }
}

/// Where the full results are, as a link when the run's artifacts have a URL.
fn artifacts(opts: &RenderOptions) -> String {
    match opts.artifacts_url.as_deref().filter(|u| safe_url(u)) {
        Some(url) => format!("[the run's artifacts]({url})"),
        None => "the run's artifacts".to_string(),
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
    let count_of = |v: Verdict| r.scenarios.iter().filter(|s| s.verdict == v).count();
    let _ = writeln!(
        o,
        "**{} FAIL · {} HANG · {} ERROR · {} PASS** · {} · seed `{}`\n",
        count_of(Verdict::Fail),
        count_of(Verdict::Hang),
        count_of(Verdict::Error),
        count_of(Verdict::Pass),
        md(if r.chronik.version.is_empty() { "Chronik (version unknown)" } else { &r.chronik.version }),
        r.seed,
    );
    first_screen(&mut o, r);
    o.push('\n');
    if not_passed > 0 {
        o.push_str(
            "<sub>FAIL: acknowledged writes lost, duplicated or misordered, acknowledged without a quorum, or \
             served to readers out of order. HANG: no failover, progress or recovery in time, or a cluster not \
             whole after heal. ERROR: the fault's effect was not measured, or the harness failed.",
        );
        // Said only when a consumer group or keyed writes ran, so producer-only reports stay as they were.
        let consumers =
            r.scenarios.iter().any(|s| s.checks.as_ref().is_some_and(|c| c.group.is_some() || !c.keys.is_empty()));
        if consumers {
            o.push_str(
                " With a consumer group, FAIL also means a write it read past and was never handed, a committed \
                 offset that went back, a member resuming past a commit, records or a key's writes out of order, \
                 or a value the log does not hold; HANG also means writes the group never got to, or a group that \
                 never settled.",
            );
        }
        o.push_str("</sub>\n\n");
    }
    let _ =
        writeln!(o, "<sub>Toxiproxy: {} · {} → {}</sub>\n", md(&r.toxiproxy), md(&r.started_at), md(&r.finished_at));

    if level < Detail::Minimal && n > 0 {
        o.push_str("<details><summary>Every figure, one row per scenario</summary>\n\n");
        figures_table(&mut o, r);
        o.push_str("\n</details>\n");
    }

    let failing: Vec<(usize, &ScenarioResult)> =
        rows(r).into_iter().filter(|(_, s)| s.verdict != Verdict::Pass).collect();
    let passing: Vec<(usize, &ScenarioResult)> =
        r.scenarios.iter().enumerate().filter(|(_, s)| s.verdict == Verdict::Pass).collect();
    if !failing.is_empty() {
        let _ = writeln!(o, "\n## Did not pass ({})\n", failing.len());
        for &(i, s) in &failing {
            if level == Detail::Minimal {
                let first = s.explanation.first().map(String::as_str).unwrap_or("(no explanation recorded)");
                let first = first.lines().next().unwrap_or("");
                let _ = writeln!(o, "- {} {} — {}: {}", icon(s.verdict), md(&s.name), s.verdict, md(&cut(first, 300)));
                if s.explanation.len() > 1 {
                    let _ = writeln!(o, "  … and {} more line(s) in the artifacts", s.explanation.len() - 1);
                }
                continue;
            }
            let w = why(s);
            let _ = writeln!(
                o,
                "<details><summary>{} {} — {}: {}</summary>\n",
                icon(s.verdict),
                html_inline(&s.name),
                s.verdict,
                html_inline(&w.phrase)
            );
            scenario_details(&mut o, i, s, level, opts);
            o.push_str("</details>\n");
        }
    }
    if !passing.is_empty() {
        let _ = writeln!(o, "\n## Passed ({})\n", passing.len());
        match level {
            Detail::Full => {
                for &(i, s) in &passing {
                    let _ = writeln!(
                        o,
                        "<details><summary>✅ {} — {}</summary>\n",
                        html_inline(&s.name),
                        html_inline(&why(s).phrase)
                    );
                    scenario_details(&mut o, i, s, Detail::Full, opts);
                    o.push_str("</details>\n");
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

/// Scenarios with their run index: failures first (worst first), then passes, each in run order.
fn rows(r: &Results) -> Vec<(usize, &ScenarioResult)> {
    let mut rows: Vec<(usize, &ScenarioResult)> = r.scenarios.iter().enumerate().collect();
    rows.sort_by_key(|(_, s)| std::cmp::Reverse(s.verdict));
    rows
}

/// Four columns, so it fits a pull-request comment's width: scenario, verdict, why, the figure.
fn first_screen(o: &mut String, r: &Results) {
    if r.scenarios.is_empty() {
        return;
    }
    o.push_str("| Scenario | Verdict | Why | Key figure |\n|---|---|---|---|\n");
    for (_, s) in rows(r) {
        let w = why(s);
        let more = if w.more > 0 { format!(" (+{} more)", w.more) } else { String::new() };
        let _ = writeln!(
            o,
            "| {} | {} {} | {}{more} | {} |",
            md(&s.name),
            icon(s.verdict),
            s.verdict,
            md(&w.phrase),
            md(&w.figure)
        );
    }
    // Scenarios run more than once that did not always end alike, counted apart.
    let flaky = r.flaky();
    if !flaky.is_empty() {
        o.push('\n');
        for f in &flaky {
            let _ = writeln!(o, "- ⚠️ **{}**", md(&f.to_string()));
        }
    }
}

/// Every figure per scenario (folded below the first screen).
fn figures_table(o: &mut String, r: &Results) {
    o.push_str(
        "| Scenario | Verdict | Acked | Lost | Dup | Unseen | p50 / p99 before | p50 / p99 under fault | \
         Longest unavailable | Recovered after | Fault proven |\n",
    );
    o.push_str("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|:-:|\n");
    for (_, s) in rows(r) {
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
pub fn recovery_text(r: Recovery) -> String {
    match r {
        Recovery::NotApplicable => "—".into(),
        Recovery::Never => "never".into(),
        Recovery::AfterMs(ms) => fmt_ms(ms),
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
    let mut parts = vec![why(s).phrase, format!("{} acked", s.counts.acked)];
    if let Some(g) = group(s) {
        parts.push(format!("consumed {}, {} dup", g.consumed, g.duplicates));
    }
    if let Some(l) = &s.liveness {
        if let Some(f) = phase_latency(l, Phase::Fault) {
            parts.push(format!("p99 under fault {}", fmt_ms(f.p99_ms)));
        }
        parts.push(format!("longest unavailable {}", fmt_ms(l.longest_unavailability_ms)));
    }
    parts.push(if s.fidelity.proven { "fault proven".into() } else { "fault NOT proven".into() });
    if !s.startup_failures.is_empty() {
        parts.push(format!("{} start-up(s) never became ready (in the artifacts)", s.startup_failures.len()));
    }
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

/// How much of a log tail a non-passing scenario shows: (lines, bytes).
fn tail_budget(level: Detail) -> (usize, usize) {
    if level >= Detail::Trimmed {
        (8, 1_200)
    } else {
        (20, 3_000)
    }
}

fn scenario_details(o: &mut String, i: usize, s: &ScenarioResult, level: Detail, opts: &RenderOptions) {
    let trimmed = level >= Detail::Trimmed;
    let passed = s.verdict == Verdict::Pass;
    let line_max = if trimmed { 400 } else { 1_000 };
    let _ = writeln!(o, "{}\n", md(&s.description));
    // Reasons are shown by their first line; what follows (a log tail) is bulk.
    let mut attached: Vec<(usize, Vec<&str>)> = Vec::new();
    if !s.explanation.is_empty() {
        o.push_str("**Why:**\n\n");
        for (k, e) in s.explanation.iter().enumerate() {
            let mut lines = e.lines();
            let first = lines.next().unwrap_or("");
            let rest: Vec<&str> = lines.collect();
            let _ = write!(o, "- {}", md(&cut(first, line_max)));
            if !rest.is_empty() {
                let where_ = if passed { "in `results.json`" } else { "folded below" };
                let _ = write!(o, " (and {}, {where_})", count(rest.len(), "more line", "more lines"));
                attached.push((k + 1, rest));
            }
            o.push('\n');
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
    schedule_lines(o, s);
    if !s.timeline.is_empty() {
        o.push_str("| t | Fault timeline |\n|--:|---|\n");
        for e in &s.timeline {
            let _ = writeln!(o, "| {} | {} |", fmt_ms(e.t_ms), md(&cut(&e.what, line_max)));
        }
        o.push('\n');
    }
    let fid = &s.fidelity;
    let _ = writeln!(o, "**Fault proven: {}**", if fid.proven { "yes" } else { "no" });
    let shown = if trimmed || passed { 5 } else { 50 };
    for e in fid.evidence.iter().take(shown) {
        let _ = writeln!(o, "- {}", md(&cut(e, line_max)));
    }
    if fid.evidence.len() > shown {
        let _ = writeln!(o, "- … {} more in `results.json`", fid.evidence.len() - shown);
    }
    for p in &fid.problems {
        let _ = writeln!(o, "- ⚠️ {}", md(&cut(p, line_max)));
    }
    o.push('\n');
    if let Some(c) = &s.checks {
        checks(o, c);
        if let Some(g) = &c.group {
            group_block(o, g, c.faulted, line_max);
        }
        keys_line(o, &c.keys);
        if let Some(t) = &c.txn {
            txn_line(o, t);
        }
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
        if trimmed || passed {
            let _ = writeln!(o, "{} toxics placed (listed in `junit.xml`).\n", s.toxics.len());
        } else {
            let _ = writeln!(o, "<details><summary>{} toxics placed</summary>\n", s.toxics.len());
            for t in &s.toxics {
                let _ = writeln!(o, "- {}", md(t));
            }
            o.push_str("\n</details>\n\n");
        }
    }
    if !trimmed && !passed {
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
    if passed {
        // A pass carries no bulk: each start-up that hung is named in one line; its log tail
        // stays in the artifacts.
        for f in &s.startup_failures {
            let first = f.lines().next().unwrap_or("");
            let _ = writeln!(
                o,
                "- ⚠️ A cluster start-up before this scenario never became ready (a finding): {} Its log tail is in \
                 `results.json` (`startup_failures`) among {}.",
                md(&cut(first, 300)),
                artifacts(opts)
            );
        }
        if !s.startup_failures.is_empty() {
            o.push('\n');
        }
        return;
    }
    let (max_lines, max_bytes) = tail_budget(level);
    for (k, rest) in &attached {
        let tail = bounded_tail(rest, max_lines, max_bytes);
        let _ = writeln!(
            o,
            "<details><summary>The {} that came with reason {k}{}</summary>\n",
            count(rest.len(), "line", "lines"),
            shown_of(&tail, rest.len())
        );
        o.push_str(&code_block(&tail, "text"));
        let _ = writeln!(o, "\nAll of them: `results.json` (`explanation`) among {}.\n\n</details>\n", artifacts(opts));
    }
    for f in &s.startup_failures {
        let mut lines = f.lines();
        let first = lines.next().unwrap_or("");
        let rest: Vec<&str> = lines.collect();
        let tail = bounded_tail(&rest, max_lines, max_bytes);
        let counted = if rest.is_empty() {
            String::new()
        } else {
            format!(": {}{}", count(rest.len(), "log line", "log lines"), shown_of(&tail, rest.len()))
        };
        let _ = writeln!(
            o,
            "<details><summary>A cluster start-up that never became ready (a finding){counted}</summary>\n"
        );
        let _ = writeln!(o, "{}\n", md(&cut(first, line_max)));
        if !rest.is_empty() {
            o.push_str(&code_block(&tail, "text"));
            let _ = writeln!(o, "\nThe whole log tail: `results.json` (`startup_failures`) among {}.", artifacts(opts));
        }
        o.push_str("\n</details>\n\n");
    }
}

/// `, the last 40 shown` when a [`bounded_tail`] left lines out.
fn shown_of(tail: &str, total: usize) -> String {
    let shown = tail.lines().filter(|l| !l.starts_with("[… ")).count();
    if shown < total {
        format!(", the last {shown} shown")
    } else {
        String::new()
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

/// The consumer group's figures, one row each; rule breaches only when there are any.
fn group_block(o: &mut String, g: &GroupReport, faulted: bool, line_max: usize) {
    o.push_str("| Consumer group | |\n|---|--:|\n");
    let mut row = |what: &str, value: String| {
        let _ = writeln!(o, "| {what} | {value} |");
    };
    let members = count(g.members as usize, "member", "members");
    match g.commit_mode.trim() {
        "" => row("Members", members),
        mode => row("Members, commit mode", format!("{members}, {}", md(mode))),
    }
    row("Consumed", format!("{} in {}", count(g.consumed, "value", "values"), count(g.polls, "poll", "polls")));
    row("Duplicates delivered", g.duplicates.to_string());
    row("Rebalances (assignments)", g.rebalances.to_string());
    row("Commits accepted / refused", format!("{} / {}", g.commits_ok, g.commits_failed));
    row("Longest group stall", fmt_ms(g.longest_stall_ms));
    let c = &g.convergence;
    let settled = match c.converged_us {
        Some(t) => fmt_ms(t.saturating_sub(c.from_us) as f64 / 1e3),
        None if c.problems.is_empty() => "**never**".to_string(),
        None => {
            let shown: Vec<&str> = c.problems.iter().take(3).map(String::as_str).collect();
            let more = if c.problems.len() > 3 { format!("; {} more", c.problems.len() - 3) } else { String::new() };
            format!("**never** ({}{more})", md(&cut(&shown.join("; "), line_max)))
        }
    };
    row(if faulted { "Settled after heal" } else { "Settled after start" }, settled);
    row("Drained", if g.drained { "yes".into() } else { "**no**".into() });
    for (n, what) in [
        (g.skipped.len(), "Never delivered, read past (skipped)"),
        (g.not_reached.len(), "Never reached"),
        (g.commit_regressions.len(), "Committed offset went back"),
        (g.resume_skips.len(), "Resumed past the commit"),
        (g.jumps.len(), "Served out of order"),
        (g.wrong_values.len(), "Values the log does not hold"),
    ] {
        if n > 0 {
            row(what, bold_nonzero(n));
        }
    }
    o.push('\n');
}

/// The fault schedule as it ran (each step with its window after the warmup and the nodes its
/// roles resolved to), and for a run that did not pass, the commands that replay it and the
/// smallest failing schedule a shrink found.
fn schedule_lines(o: &mut String, s: &ScenarioResult) {
    let Some(sched) = &s.schedule else { return };
    o.push_str("**Schedule** (seconds after the warmup):\n");
    for (i, line) in sched.describe().iter().enumerate() {
        let _ = writeln!(o, "{}. {}", i + 1, md(line));
    }
    o.push('\n');
    if s.verdict > Verdict::NotApplicable {
        let _ = writeln!(o, "Replay: `chronik-chaos chaos --replay results.json --scenario {}`\n", s.name);
    }
    if let Some(sh) = &s.shrunk {
        let _ = writeln!(
            o,
            "**Shrunk** in {} ({}) from {} to {}:",
            count(sh.tries, "run", "runs"),
            if sh.exhausted_budget { "budget used up" } else { "no smaller schedule still failed" },
            count(sh.original.steps.len(), "step", "steps"),
            count(sh.smallest.steps.len(), "step", "steps")
        );
        for (i, line) in sh.smallest.describe().iter().enumerate() {
            let _ = writeln!(o, "{}. {}", i + 1, md(line));
        }
        let _ = writeln!(o, "\nReplay: `chronik-chaos chaos --replay results.json --scenario {}~smallest`\n", s.name);
    }
}

/// One line for the transactions: outcomes, what was read, the rules broken.
fn txn_line(o: &mut String, t: &TxnReport) {
    let _ = write!(
        o,
        "**Transactions:** {} committed, {} aborted, {} failed, {} indeterminate; {} of {} committed writes read back",
        t.committed, t.aborted, t.failed, t.unknown, t.committed_values_read, t.committed_values
    );
    match t.violations() {
        0 => o.push_str("; every rule held"),
        n => {
            let _ = write!(o, "; **{}**", count(n, "violation", "violations"));
        }
    }
    o.push_str("\n\n");
}

/// One line for keyed writes (nothing without them).
fn keys_line(o: &mut String, k: &KeyReport) {
    if k.keys == 0 {
        return;
    }
    let _ = write!(
        o,
        "**Keys:** {} written, {} (in the log and as members were handed them)",
        k.keys,
        if k.reorders.is_empty() {
            "0 reorders".to_string()
        } else {
            format!("**{}**", count(k.reorders.len(), "reorder", "reorders"))
        }
    );
    if !k.split_keys.is_empty() {
        let _ = write!(o, "; {} in more than one partition", count(k.split_keys.len(), "key", "keys"));
    }
    o.push_str(".\n\n");
}

/// The last lines of a log that fit in `max_lines` lines and `max_bytes` bytes (each line cut
/// to 300 bytes), latest kept, with a line saying how many earlier ones were left out.
fn bounded_tail(lines: &[&str], max_lines: usize, max_bytes: usize) -> String {
    let mut kept: Vec<String> = Vec::new();
    let mut bytes = 0;
    for line in lines.iter().rev().take(max_lines) {
        let line = cut(line, 300);
        if !kept.is_empty() && bytes + line.len() + 1 > max_bytes {
            break;
        }
        bytes += line.len() + 1;
        kept.push(line);
    }
    kept.reverse();
    let mut out = String::new();
    let left_out = lines.len() - kept.len();
    if left_out > 0 {
        let _ = writeln!(out, "[… {left_out} earlier lines]");
    }
    out.push_str(&kept.join("\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_tail_keeps_the_latest_lines_within_its_budget() {
        let lines: Vec<String> = (0..100).map(|i| format!("line {i:03} {}", "x".repeat(50))).collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let tail = bounded_tail(&refs, 40, 1_000);
        assert!(tail.len() < 1_100, "{}", tail.len());
        assert!(tail.ends_with(&lines[99]), "the latest line is kept");
        assert!(tail.starts_with("[… "), "{tail}");
        assert_eq!(bounded_tail(&refs[..3], 40, 6_000), refs[..3].join("\n"));
    }

    #[test]
    fn a_fallback_phrase_is_the_first_reason_shortened() {
        let fb = |e: &str| {
            let mut s = crate::results::ScenarioResult {
                name: "x".into(),
                family: "x".into(),
                description: String::new(),
                source: String::new(),
                verdict: Verdict::Error,
                explanation: vec!["Note: decides nothing.".into(), e.into()],
                seed: 0,
                duration_ms: 0.0,
                timeline: vec![],
                targets: Default::default(),
                toxics: vec![],
                fidelity: Default::default(),
                counts: Default::default(),
                anomalies: Default::default(),
                checks: None,
                liveness: None,
                metrics: vec![],
                history_file: None,
                node_logs: vec![],
                startup_failures: vec![],
                nodes: None,
                schedule: None,
                shrunk: None,
            };
            s.verdict = Verdict::Error;
            why(&s)
        };
        let w = fb("The harness could not complete this scenario: cluster not ready after 45 s\nlog line");
        assert_eq!(w.phrase, "cluster not ready after 45 s");
        // With nothing after the preamble, the preamble itself is the phrase.
        assert_eq!(
            fb("The harness could not complete this scenario: ").phrase,
            "the harness could not complete this scenario"
        );
        assert_eq!((w.figure.as_str(), w.more), ("—", 0));
        assert_eq!(
            fb("HANG: n2 exited on its own (signal 9) during the scenario.").phrase,
            "n2 exited on its own (signal 9) during the scenario"
        );
        assert_eq!(fb("").phrase, "no reason recorded");
        assert!(fb(&"word ".repeat(40)).phrase.ends_with('…'));
    }
}
