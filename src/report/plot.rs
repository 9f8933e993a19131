//! Plots of one scenario over time: acknowledged-write latency (p50/p99 per second, log scale,
//! its floor following the data) and throughput (acknowledged writes per whole second, per
//! partition too when the partitions fared differently), with the fault window shaded, as SVG
//! (plotters, SVG backend only); plus a compact mermaid chart GitHub renders inline.

use std::fmt::Write as _;

use plotters::prelude::*;

use super::escape::{slug, strip_controls};
use crate::liveness::Liveness;
use crate::results::ScenarioResult;

/// Line colours for per-partition throughput, cycled.
const PARTITION_COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// `plots/<NN>-<slug>.svg`: numbered so two scenarios whose names slug alike never collide.
pub fn file_name(index: usize, s: &ScenarioResult) -> String {
    format!("{:02}-{}.svg", index + 1, slug(&s.name))
}

/// The fault window in seconds since start: from the measured timeline, or (in results
/// written before it was recorded) from the `inject`/`heal` events.
fn fault_window_s(s: &ScenarioResult) -> Option<(f64, f64)> {
    if let Some(tl) = s.liveness.as_ref()?.timeline {
        return Some((tl.inject_us as f64 / 1e6, tl.heal_us as f64 / 1e6));
    }
    let at = |prefix: &str| s.timeline.iter().find(|e| e.what.starts_with(prefix)).map(|e| e.t_ms / 1e3);
    Some((at("inject")?, at("heal")?))
}

/// Each fault's own window in seconds since start: a schedule's steps placed by its first
/// step's measured injection (steps keep their recorded spacing), else the one fault window.
fn fault_windows_s(s: &ScenarioResult) -> Vec<(f64, f64)> {
    let Some((a, b)) = fault_window_s(s) else { return Vec::new() };
    match &s.schedule {
        Some(sched) if sched.steps.len() > 1 => {
            let first = sched.steps.iter().map(|st| st.start_ms).min().unwrap_or(0);
            let at = |ms: u64| a + (ms.saturating_sub(first)) as f64 / 1e3;
            sched.steps.iter().map(|st| (at(st.start_ms), at(st.end_ms))).collect()
        }
        _ => vec![(a, b)],
    }
}

/// The SVG for one scenario, or `None` when it has no liveness figures (it never ran its workload).
pub fn scenario_svg(s: &ScenarioResult) -> Option<String> {
    let l = s.liveness.as_ref()?;
    let whole = whole_seconds(l);
    let acked = &l.acked_per_second[..whole.min(l.acked_per_second.len())];
    let latency = &l.latency_per_second[..whole.min(l.latency_per_second.len())];
    let end = acked.len().max(latency.len()).max(1) as f64;
    let windows = fault_windows_s(s);
    let floor = latency_floor(latency);
    let p50: Vec<(f64, f64)> = points(latency, floor, |x| x.p50_ms);
    let p99: Vec<(f64, f64)> = points(latency, floor, |x| x.p99_ms);
    let lat_max = p99.iter().map(|p| p.1).fold(floor * 10.0, f64::max) * 2.0;
    let thr_max = acked.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.15;
    let partitions = uneven_partitions(l, acked.len());
    let mut svg = String::new();
    let title: String = strip_controls(&s.name).chars().take(80).collect();
    let drawn: Result<(), Box<dyn std::error::Error>> = (|| {
        let root = SVGBackend::with_string(&mut svg, (900, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(&format!("{title} — {}", s.verdict), ("sans-serif", 20))?;
        let (top, bottom) = root.split_vertically(270);
        let shade = RGBColor(220, 60, 60).mix(0.15).filled();

        let mut c = ChartBuilder::on(&top)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..end, (floor..lat_max).log_scale())?;
        c.configure_mesh()
            .light_line_style(RGBColor(235, 235, 235))
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .y_desc("latency (ms, log)")
            .x_desc("seconds since start")
            .draw()?;
        if !windows.is_empty() {
            c.draw_series(windows.iter().map(|&(a, b)| Rectangle::new([(a, floor), (b, lat_max)], shade)))?
                .label("fault")
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], shade));
        }
        c.draw_series(LineSeries::new(p50, BLUE.stroke_width(2)))?
            .label("p50")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], BLUE.stroke_width(2)));
        c.draw_series(LineSeries::new(p99, RGBColor(230, 120, 0).stroke_width(2)))?
            .label("p99")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], RGBColor(230, 120, 0).stroke_width(2)));
        c.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;

        let mut c = ChartBuilder::on(&bottom)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..end, 0f64..thr_max)?;
        c.configure_mesh()
            .light_line_style(RGBColor(235, 235, 235))
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .y_desc("acked writes/s")
            .x_desc("seconds since start")
            .draw()?;
        c.draw_series(windows.iter().map(|&(a, b)| Rectangle::new([(a, 0.0), (b, thr_max)], shade)))?;
        let per_second =
            |v: &[u32]| -> Vec<(f64, f64)> { v.iter().enumerate().map(|(i, &n)| (i as f64 + 0.5, n as f64)).collect() };
        c.draw_series(AreaSeries::new(per_second(acked), 0.0, GREEN.mix(0.25)).border_style(GREEN.stroke_width(2)))?
            .label("all")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], GREEN.stroke_width(2)));
        for (k, (p, counts)) in partitions.iter().enumerate() {
            let colour = PARTITION_COLOURS[k % PARTITION_COLOURS.len()];
            c.draw_series(LineSeries::new(per_second(counts), colour.stroke_width(1)))?
                .label(format!("partition {p}"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], colour.stroke_width(1)));
        }
        if !partitions.is_empty() {
            c.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
        }
        root.present()?;
        Ok(())
    })();
    drawn.ok().map(|_| svg)
}

fn points<T: Copy>(v: &[Option<T>], floor: f64, f: impl Fn(T) -> f64) -> Vec<(f64, f64)> {
    v.iter().enumerate().filter_map(|(i, x)| x.map(|x| (i as f64 + 0.5, f(x).max(floor)))).collect()
}

/// How many leading per-second buckets cover a whole second: the last one is dropped when the
/// workload ended part-way through it (drawn, it would look like a drop in throughput).
/// Older results without a timeline keep every bucket.
fn whole_seconds(l: &Liveness) -> usize {
    let buckets = l.acked_per_second.len().max(l.latency_per_second.len());
    match l.timeline {
        Some(tl) => buckets.min((tl.end_us / 1_000_000) as usize),
        None => buckets,
    }
}

/// The latency axis' floor: the power of ten at or below half the lowest p50 drawn (0.001 ms
/// at the least), so sub-millisecond latencies are not flattened onto a fixed 0.1 ms floor.
fn latency_floor(latency: &[Option<crate::liveness::SecondLatency>]) -> f64 {
    let lowest = latency.iter().flatten().map(|x| x.p50_ms).filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
    if !lowest.is_finite() {
        return 0.1;
    }
    10f64.powf((lowest / 2.0).log10().floor()).max(0.001)
}

/// Per-partition series to draw beside the total, when the partitions fared differently: in
/// some whole second one partition acknowledged nothing while another acknowledged writes.
/// Empty otherwise (or with one partition), so an even run keeps one clean area.
fn uneven_partitions(l: &Liveness, whole: usize) -> Vec<(i32, Vec<u32>)> {
    let series: Vec<(i32, Vec<u32>)> =
        l.acked_per_second_by_partition.iter().map(|(p, v)| (*p, v[..whole.min(v.len())].to_vec())).collect();
    // From second 1: the first second is the producers' start, uneven by nature.
    let uneven = (1..whole).any(|i| {
        let at = |v: &Vec<u32>| v.get(i).copied().unwrap_or(0);
        series.iter().any(|(_, v)| at(v) == 0) && series.iter().any(|(_, v)| at(v) > 0)
    });
    if series.len() > 1 && uneven {
        series
    } else {
        Vec::new()
    }
}

/// An axis label without a trailing ".0" (2, 2.5, 0.01).
fn tick(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// A mermaid `xychart-beta` of acknowledged writes per second (at most 40 bars), titled with
/// the fault window; only numbers and fixed words go into it, never scenario text.
pub fn mermaid(s: &ScenarioResult) -> Option<String> {
    let l = s.liveness.as_ref()?;
    let acked = &l.acked_per_second[..whole_seconds(l).min(l.acked_per_second.len())];
    if acked.is_empty() {
        return None;
    }
    let per = acked.len().div_ceil(40);
    let bars: Vec<f64> = acked.chunks(per).map(|c| c.iter().map(|&n| n as f64).sum::<f64>() / c.len() as f64).collect();
    let top = bars.iter().copied().fold(1.0, f64::max) * 1.1;
    let mut o = String::from("```mermaid\nxychart-beta\n");
    let window = match fault_window_s(s) {
        Some((a, b)) => format!(", fault {a:.0}–{b:.0} s"),
        None => String::new(),
    };
    let _ = writeln!(o, "    title \"Acked writes/s over time{window}\"");
    let labels: Vec<String> = (0..bars.len()).map(|i| format!("\"{}\"", i * per)).collect();
    let _ = writeln!(o, "    x-axis \"seconds\" [{}]", labels.join(", "));
    let _ = writeln!(o, "    y-axis \"writes/s\" 0 --> {top:.0}");
    let vals: Vec<String> = bars.iter().map(|v| format!("{v:.0}")).collect();
    let _ = writeln!(o, "    bar [{}]", vals.join(", "));
    o.push_str("```\n");
    Some(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::liveness::SecondLatency;
    use crate::results::Results;

    /// A scenario of the committed synthetic results, with 4.5 s of per-second figures: 100
    /// writes a second over two partitions, partition 1 silent in second 2.
    fn scenario() -> ScenarioResult {
        let r: Results = serde_json::from_str(include_str!("../../tests/fixtures/results-mixed.json")).unwrap();
        let mut s = r.scenarios.into_iter().find(|s| s.liveness.is_some()).expect("a scenario with liveness");
        let l = s.liveness.as_mut().unwrap();
        l.acked_per_second = vec![100, 100, 50, 100, 40];
        l.acked_per_second_by_partition = [(0, vec![50, 50, 50, 50, 20]), (1, vec![50, 50, 0, 50, 20])].into();
        l.latency_per_second = vec![Some(SecondLatency { p50_ms: 0.3, p99_ms: 0.9 }); 5];
        l.timeline = Some(crate::history::Timeline { inject_us: 2_000_000, heal_us: 3_000_000, end_us: 4_500_000 });
        s
    }

    #[test]
    fn each_step_of_a_schedule_gets_its_own_shaded_window() {
        use crate::schedule::{Schedule, Step};
        let mut s = scenario();
        assert_eq!(fault_windows_s(&s), vec![(2.0, 3.0)]);
        let step = |start_ms, end_ms| Step {
            fault: crate::scenario::Fault::Kill(crate::scenario::Target::Leader),
            start_ms,
            end_ms,
            targets: Default::default(),
        };
        s.schedule = Some(Schedule::new(vec![step(1_000, 1_500), step(2_000, 2_600)]));
        assert_eq!(fault_windows_s(&s), vec![(2.0, 2.5), (3.0, 3.6)]);
        let svg = scenario_svg(&s).unwrap();
        // Two shaded rectangles per panel.
        let shaded = svg.lines().filter(|l| l.starts_with("<rect") && l.contains("opacity=\"0.15\"")).count();
        assert_eq!(shaded, 4 + 1, "two windows in each panel and the legend's swatch: {svg}");
    }

    #[test]
    fn ticks_have_no_trailing_zeros() {
        for (v, want) in [(2.0, "2"), (2.5, "2.5"), (0.01, "0.01"), (0.0, "0"), (1000.0, "1000"), (0.1 + 0.2, "0.3")] {
            assert_eq!(tick(v), want, "{v}");
        }
        // plotters writes each label on a line of its own inside <text>.
        let svg = scenario_svg(&scenario()).unwrap();
        let labels: Vec<&str> = svg.lines().filter(|l| !l.starts_with('<')).collect();
        assert!(labels.contains(&"2") && labels.contains(&"100"), "{labels:?}");
        assert!(labels.iter().all(|l| !l.ends_with(".0")), "a tick label ends in .0: {labels:?}");
    }

    #[test]
    fn the_partial_last_second_is_not_drawn() {
        let mut s = scenario();
        assert_eq!(whole_seconds(s.liveness.as_ref().unwrap()), 4);
        // The mermaid chart shows the four whole seconds only.
        let chart = mermaid(&s).unwrap();
        assert!(chart.contains("bar [100, 100, 50, 100]"), "{chart}");
        // Ending on a whole second: every bucket before it is whole.
        s.liveness.as_mut().unwrap().timeline.as_mut().unwrap().end_us = 5_000_000;
        assert_eq!(whole_seconds(s.liveness.as_ref().unwrap()), 5);
        // Older results without a timeline keep every bucket.
        s.liveness.as_mut().unwrap().timeline = None;
        assert_eq!(whole_seconds(s.liveness.as_ref().unwrap()), 5);
    }

    #[test]
    fn the_latency_floor_follows_the_data() {
        let at = |p50: f64| vec![Some(SecondLatency { p50_ms: p50, p99_ms: p50 * 3.0 }), None];
        assert_eq!(latency_floor(&at(0.3)), 0.1);
        assert_eq!(latency_floor(&at(0.04)), 0.01);
        assert_eq!(latency_floor(&at(250.0)), 100.0);
        assert_eq!(latency_floor(&at(0.0000001)), 0.001);
        assert_eq!(latency_floor(&[None]), 0.1);
    }

    #[test]
    fn partitions_are_drawn_apart_only_when_they_fared_differently() {
        let s = scenario();
        let l = s.liveness.as_ref().unwrap();
        let drawn = uneven_partitions(l, 4);
        assert_eq!(drawn.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![0, 1]);
        assert!(scenario_svg(&s).unwrap().contains("partition 1"));
        // Near miss: even partitions (and a slow first second) keep one area.
        let mut even = s.clone();
        let le = even.liveness.as_mut().unwrap();
        le.acked_per_second_by_partition = [(0, vec![0, 50, 25, 50, 20]), (1, vec![30, 50, 25, 50, 20])].into();
        assert!(uneven_partitions(le, 4).is_empty());
        assert!(!scenario_svg(&even).unwrap().contains("partition 1"));
    }
}
