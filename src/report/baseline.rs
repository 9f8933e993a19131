//! Baseline deltas: per scenario (matched by name), p99 latency under fault, longest
//! unavailability and time to recover against an earlier run, and regressions beyond a
//! relative tolerance (with small absolute floors so microsecond noise is never a regression).

use std::fmt::Write as _;

use super::escape::md;
use super::{fmt_ms, phase_latency};
use crate::liveness::Phase;
use crate::results::{Results, ScenarioResult};
use crate::verdict::Verdict;

/// A latency change smaller than this is never a regression.
pub const LATENCY_FLOOR_MS: f64 = 5.0;
/// An unavailability or recovery change smaller than this is never a regression.
pub const OUTAGE_FLOOR_MS: f64 = 250.0;

#[derive(Clone, Debug, PartialEq)]
pub struct Delta {
    pub scenario: String,
    /// `None` when the baseline has no such scenario.
    pub was: Option<Verdict>,
    /// `None` when this run has no such scenario.
    pub now: Option<Verdict>,
    pub p99_fault_ms: (Option<f64>, Option<f64>),
    pub unavailability_ms: (Option<f64>, Option<f64>),
    pub recovery_ms: (Option<f64>, Option<f64>),
    /// What got worse beyond the tolerance, one line each.
    pub regressions: Vec<String>,
}

fn figures(s: &ScenarioResult) -> (Option<f64>, Option<f64>, Option<f64>) {
    match &s.liveness {
        Some(l) => (
            phase_latency(l, Phase::Fault).map(|p| p.p99_ms),
            Some(l.longest_unavailability_ms),
            match s.recovery() {
                crate::results::Recovery::AfterMs(ms) => Some(ms),
                _ => None,
            },
        ),
        None => (None, None, None),
    }
}

fn grew(was: Option<f64>, now: Option<f64>, tolerance: f64, floor: f64) -> bool {
    matches!((was, now), (Some(w), Some(n)) if n > w * (1.0 + tolerance) && n - w > floor)
}

/// Compares `current` with `baseline`, scenario by scenario, in the current run's order.
pub fn compare(current: &Results, baseline: &Results, tolerance: f64) -> Vec<Delta> {
    let mut out = Vec::new();
    for s in &current.scenarios {
        let base = baseline.scenarios.iter().find(|b| b.name == s.name);
        let (p, u, r) = figures(s);
        let (bp, bu, br) = base.map(figures).unwrap_or((None, None, None));
        let mut regressions = Vec::new();
        if let Some(b) = base {
            if b.verdict == Verdict::Pass && s.verdict != Verdict::Pass {
                regressions.push(format!("verdict PASS → {}", s.verdict));
            }
            if grew(bp, p, tolerance, LATENCY_FLOOR_MS) {
                regressions.push(format!("p99 under fault {} → {}", fmt_ms(bp.unwrap()), fmt_ms(p.unwrap())));
            }
            if grew(bu, u, tolerance, OUTAGE_FLOOR_MS) {
                regressions.push(format!("longest unavailability {} → {}", fmt_ms(bu.unwrap()), fmt_ms(u.unwrap())));
            }
            if grew(br, r, tolerance, OUTAGE_FLOOR_MS) {
                regressions.push(format!("recovery {} → {}", fmt_ms(br.unwrap()), fmt_ms(r.unwrap())));
            }
            if let (Some(was), None, Some(_)) = (br, r, &s.liveness) {
                regressions.push(format!("recovery {} → never", fmt_ms(was)));
            }
        }
        out.push(Delta {
            scenario: s.name.clone(),
            was: base.map(|b| b.verdict),
            now: Some(s.verdict),
            p99_fault_ms: (bp, p),
            unavailability_ms: (bu, u),
            recovery_ms: (br, r),
            regressions,
        });
    }
    for b in &baseline.scenarios {
        if !current.scenarios.iter().any(|s| s.name == b.name) {
            let (bp, bu, br) = figures(b);
            out.push(Delta {
                scenario: b.name.clone(),
                was: Some(b.verdict),
                now: None,
                p99_fault_ms: (bp, None),
                unavailability_ms: (bu, None),
                recovery_ms: (br, None),
                regressions: vec![],
            });
        }
    }
    out
}

fn pair(p: (Option<f64>, Option<f64>)) -> String {
    let f = |x: Option<f64>| x.map(fmt_ms).unwrap_or_else(|| "—".into());
    match p {
        (Some(w), Some(n)) if w > 0.0 => format!("{} → {} ({:+.0} %)", f(p.0), f(p.1), (n - w) / w * 100.0),
        _ => format!("{} → {}", f(p.0), f(p.1)),
    }
}

/// The "Compared with baseline" section.
pub fn render_markdown(deltas: &[Delta], tolerance: f64) -> String {
    let mut o = String::from("## Compared with baseline\n\n");
    let regressed = deltas.iter().filter(|d| !d.regressions.is_empty()).count();
    let _ = writeln!(
        o,
        "{} · tolerance {:.0} % (changes under {} latency or {} outage are noise)\n",
        if regressed == 0 {
            "No regressions".to_string()
        } else {
            format!("**⚠️ {regressed} scenario(s) regressed**")
        },
        tolerance * 100.0,
        fmt_ms(LATENCY_FLOOR_MS),
        fmt_ms(OUTAGE_FLOOR_MS)
    );
    o.push_str("| Scenario | Verdict | p99 under fault | Longest unavailable | Recovered after | Regression |\n");
    o.push_str("|---|---|--:|--:|--:|---|\n");
    let v = |x: Option<Verdict>| x.map(|v| v.to_string()).unwrap_or_else(|| "—".into());
    for d in deltas {
        let _ = writeln!(
            o,
            "| {} | {} → {} | {} | {} | {} | {} |",
            md(&d.scenario),
            v(d.was),
            v(d.now),
            pair(d.p99_fault_ms),
            pair(d.unavailability_ms),
            pair(d.recovery_ms),
            if d.regressions.is_empty() { String::new() } else { format!("⚠️ {}", md(&d.regressions.join("; "))) }
        );
    }
    o
}
