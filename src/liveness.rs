//! Liveness figures from a [`History`] and the fault timeline: longest unavailability (gap
//! between successful writes), time from heal to first success and to recovered throughput,
//! latency percentiles per phase (hdrhistogram), and acknowledged writes per second.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::history::{History, Outcome};

pub use crate::history::Timeline;

/// The phase a send belongs to, by its invoke time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before the fault: the baseline.
    Steady,
    /// Between inject and heal.
    Fault,
    /// After heal.
    Recovery,
}

impl Phase {
    pub fn of(t_us: u64, tl: &Timeline) -> Phase {
        if t_us < tl.inject_us {
            Phase::Steady
        } else if t_us < tl.heal_us {
            Phase::Fault
        } else {
            Phase::Recovery
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Liveness {
    /// Longest time without an acknowledged write, over the whole run.
    pub longest_unavailability_ms: f64,
    /// Where that gap started and ended (µs since start).
    pub unavailability_window_us: (u64, u64),
    /// From heal to the first acknowledgement of a write invoked after heal.
    pub heal_to_first_success_ms: Option<f64>,
    /// From heal to the first one-second window after it with at least half the steady rate.
    pub heal_to_recovered_ms: Option<f64>,
    pub steady_rate_per_s: f64,
    /// Acknowledged-write latency per phase (by invoke time).
    pub latency: BTreeMap<Phase, LatencyStats>,
    /// Acknowledged writes per whole second since start (by completion time). The last second
    /// is partial unless the workload ended on a whole second (see `timeline.end_us`).
    pub acked_per_second: Vec<u32>,
    /// The same per partition (absent in older results files).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub acked_per_second_by_partition: BTreeMap<i32, Vec<u32>>,
    /// Acknowledged-write latency per whole second since start (by invoke time); `None` for a
    /// second in which no write that was later acknowledged was invoked. For plots.
    #[serde(default)]
    pub latency_per_second: Vec<Option<SecondLatency>>,
    /// The phases these figures were measured against (absent in older results files).
    #[serde(default)]
    pub timeline: Option<Timeline>,
}

/// Latency of the acknowledged writes invoked within one second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SecondLatency {
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Computes every figure.
pub fn measure(h: &History, tl: &Timeline) -> Liveness {
    let mut oks: Vec<(u64, u64)> = h
        .sends
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Ok { .. }))
        .filter_map(|s| s.completed_us.map(|c| (s.invoked_us, c)))
        .collect();
    oks.sort_by_key(|&(_, c)| c);
    let seconds = (tl.end_us / 1_000_000 + 1) as usize;
    let mut by_partition: BTreeMap<i32, Vec<u32>> = BTreeMap::new();
    for s in &h.sends {
        if let (Outcome::Ok { partition, .. }, Some(c)) = (&s.outcome, s.completed_us) {
            let counts = by_partition.entry(*partition).or_insert_with(|| vec![0; seconds]);
            if let Some(slot) = counts.get_mut((c / 1_000_000) as usize) {
                *slot += 1;
            }
        }
    }

    // Longest gap between acknowledgements, counting from the start and to the end.
    let mut prev = 0u64;
    let mut longest = (0u64, 0u64);
    for &(_, c) in oks.iter().filter(|(_, c)| *c <= tl.end_us) {
        if c.saturating_sub(prev) > longest.1 - longest.0 {
            longest = (prev, c);
        }
        prev = c;
    }
    if tl.end_us.saturating_sub(prev) > longest.1 - longest.0 {
        longest = (prev, tl.end_us);
    }

    let mut per_second = vec![0u32; seconds];
    for &(_, c) in &oks {
        if let Some(slot) = per_second.get_mut((c / 1_000_000) as usize) {
            *slot += 1;
        }
    }
    let steady_secs = (tl.inject_us as f64 / 1e6).max(1e-9);
    let steady_count = oks.iter().filter(|(_, c)| *c < tl.inject_us).count();
    let steady_rate = steady_count as f64 / steady_secs;

    let heal_to_first_success_ms =
        oks.iter().filter(|(i, _)| *i >= tl.heal_us).map(|(_, c)| c).min().map(|c| (c - tl.heal_us) as f64 / 1e3);
    // Sliding one-second windows after heal, in 100 ms steps.
    let mut heal_to_recovered_ms = None;
    if steady_rate > 0.0 {
        let mut start = tl.heal_us;
        while start + 1_000_000 <= tl.end_us.max(tl.heal_us + 1_000_000) {
            let n = oks.iter().filter(|(_, c)| *c >= start && *c < start + 1_000_000).count() as f64;
            if n >= steady_rate / 2.0 {
                heal_to_recovered_ms = Some((start + 1_000_000 - tl.heal_us) as f64 / 1e3);
                break;
            }
            start += 100_000;
        }
    }

    let new_hist = || Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    let mut hists: BTreeMap<Phase, Histogram<u64>> = BTreeMap::new();
    let mut per_second_hists: Vec<Option<Histogram<u64>>> = vec![None; seconds];
    for &(i, c) in &oks {
        let _ = hists.entry(Phase::of(i, tl)).or_insert_with(new_hist).record((c - i).max(1));
        if let Some(slot) = per_second_hists.get_mut((i / 1_000_000) as usize) {
            let _ = slot.get_or_insert_with(new_hist).record((c - i).max(1));
        }
    }
    let latency_per_second = per_second_hists
        .into_iter()
        .map(|h| {
            h.map(|h| SecondLatency {
                p50_ms: h.value_at_quantile(0.5) as f64 / 1e3,
                p99_ms: h.value_at_quantile(0.99) as f64 / 1e3,
            })
        })
        .collect();
    let latency = hists
        .into_iter()
        .map(|(p, hist)| {
            let ms = |us: u64| us as f64 / 1e3;
            (
                p,
                LatencyStats {
                    count: hist.len(),
                    p50_ms: ms(hist.value_at_quantile(0.5)),
                    p99_ms: ms(hist.value_at_quantile(0.99)),
                    max_ms: ms(hist.max()),
                },
            )
        })
        .collect();

    Liveness {
        longest_unavailability_ms: (longest.1 - longest.0) as f64 / 1e3,
        unavailability_window_us: longest,
        heal_to_first_success_ms,
        heal_to_recovered_ms,
        steady_rate_per_s: steady_rate,
        latency,
        acked_per_second: per_second,
        acked_per_second_by_partition: by_partition,
        latency_per_second,
        timeline: Some(*tl),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{value_of, Send};

    /// One acknowledged write every 10 ms taking `lat` µs, except during `outage` (µs range).
    fn steady(end_us: u64, lat: impl Fn(u64) -> u64, outage: (u64, u64)) -> History {
        let mut h = History::default();
        let mut t = 0;
        let mut seq = 0;
        while t < end_us {
            if !(outage.0..outage.1).contains(&t) {
                h.sends.push(Send {
                    producer: 0,
                    seq,
                    value: value_of(0, seq),
                    invoked_us: t,
                    completed_us: Some(t + lat(t)),
                    outcome: Outcome::Ok { partition: 0, offset: seq as i64 },
                    broker: None,
                    key: None,
                });
                seq += 1;
            }
            t += 10_000;
        }
        h
    }

    #[test]
    fn outage_and_recovery_are_measured() {
        let tl = Timeline { inject_us: 2_000_000, heal_us: 4_000_000, end_us: 8_000_000 };
        // No success from 2.5 s to 4.5 s.
        let h = steady(tl.end_us, |_| 1_000, (2_500_000, 4_500_000));
        let l = measure(&h, &tl);
        assert!((l.longest_unavailability_ms - 2010.0).abs() < 1.0, "{l:?}");
        assert_eq!(l.unavailability_window_us, (2_491_000, 4_501_000));
        assert_eq!(l.heal_to_first_success_ms, Some(501.0));
        assert!((l.steady_rate_per_s - 100.0).abs() < 1.0);
        // 100/s steady; half of it (50 acks) within 1 s comes back in the window ending 1.5 s after heal.
        let rec = l.heal_to_recovered_ms.unwrap();
        assert!((1000.0..=1500.0).contains(&rec), "{rec}");
        assert_eq!(l.acked_per_second[3], 0);
        assert_eq!(l.acked_per_second[1], 100);
    }

    #[test]
    fn throughput_is_counted_per_partition_too() {
        let tl = Timeline { inject_us: 1_000_000, heal_us: 2_000_000, end_us: 3_000_000 };
        let mut h = steady(tl.end_us, |_| 1_000, (0, 0));
        // Every other write to partition 1, which stalls during the fault.
        h.sends.retain(|s| s.seq % 2 == 0 || !(1_000_000..2_000_000).contains(&s.invoked_us));
        for s in h.sends.iter_mut().filter(|s| s.seq % 2 == 1) {
            s.outcome = Outcome::Ok { partition: 1, offset: s.seq as i64 };
        }
        let l = measure(&h, &tl);
        assert_eq!(l.acked_per_second_by_partition[&0], vec![50, 50, 50, 0]);
        assert_eq!(l.acked_per_second_by_partition[&1], vec![50, 0, 50, 0]);
        assert_eq!(l.acked_per_second, vec![100, 50, 100, 0]);
    }

    #[test]
    fn latency_per_phase() {
        let tl = Timeline { inject_us: 1_000_000, heal_us: 2_000_000, end_us: 3_000_000 };
        let h = steady(tl.end_us, |t| if Phase::of(t, &tl) == Phase::Fault { 100_000 } else { 2_000 }, (0, 0));
        let l = measure(&h, &tl);
        let steady = &l.latency[&Phase::Steady];
        let fault = &l.latency[&Phase::Fault];
        assert_eq!(steady.count, 100);
        assert!((steady.p50_ms - 2.0).abs() < 0.01 && (steady.p99_ms - 2.0).abs() < 0.01, "{steady:?}");
        assert!((fault.p50_ms - 100.0).abs() < 0.1 && (fault.max_ms - 100.0).abs() < 0.1, "{fault:?}");
        // Per second, by invoke time: the fault second shows the fault's latency.
        assert_eq!(l.latency_per_second.len(), 4);
        assert!((l.latency_per_second[0].unwrap().p99_ms - 2.0).abs() < 0.01);
        assert!((l.latency_per_second[1].unwrap().p50_ms - 100.0).abs() < 0.1);
        assert_eq!(l.latency_per_second[3], None, "nothing invoked in the last second");
        assert_eq!(l.timeline, Some(tl));
    }

    #[test]
    fn a_cluster_that_never_recovers_has_no_recovery_time() {
        let tl = Timeline { inject_us: 1_000_000, heal_us: 2_000_000, end_us: 5_000_000 };
        let h = steady(tl.end_us, |_| 1_000, (1_000_000, 5_000_000));
        let l = measure(&h, &tl);
        assert_eq!(l.heal_to_first_success_ms, None);
        assert_eq!(l.heal_to_recovered_ms, None);
        assert!((l.longest_unavailability_ms - 4009.0).abs() < 1.0, "{l:?}");
    }
}
