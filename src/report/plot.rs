//! Plots of one scenario over time: acknowledged-write latency (p50/p99 per second, log scale)
//! and throughput (acknowledged writes per second), with the fault window shaded, as SVG
//! (plotters, SVG backend only); plus a compact mermaid chart GitHub renders inline.

use std::fmt::Write as _;

use plotters::prelude::*;

use super::escape::{slug, strip_controls};
use crate::results::ScenarioResult;

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

/// The SVG for one scenario, or `None` when it has no liveness figures (it never ran its workload).
pub fn scenario_svg(s: &ScenarioResult) -> Option<String> {
    let l = s.liveness.as_ref()?;
    let seconds = l.acked_per_second.len().max(l.latency_per_second.len()).max(1);
    let end = seconds as f64;
    let window = fault_window_s(s);
    let p50: Vec<(f64, f64)> = points(&l.latency_per_second, |x| x.p50_ms);
    let p99: Vec<(f64, f64)> = points(&l.latency_per_second, |x| x.p99_ms);
    let lat_max = p99.iter().map(|p| p.1).fold(1.0f64, f64::max) * 2.0;
    let thr_max = l.acked_per_second.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.15;
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
            .build_cartesian_2d(0f64..end, (0.1f64..lat_max).log_scale())?;
        c.configure_mesh()
            .light_line_style(RGBColor(235, 235, 235))
            .y_desc("latency (ms, log)")
            .x_desc("seconds since start")
            .draw()?;
        if let Some((a, b)) = window {
            c.draw_series(std::iter::once(Rectangle::new([(a, 0.1), (b, lat_max)], shade)))?
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
            .y_desc("acked writes/s")
            .x_desc("seconds since start")
            .draw()?;
        if let Some((a, b)) = window {
            c.draw_series(std::iter::once(Rectangle::new([(a, 0.0), (b, thr_max)], shade)))?;
        }
        let thr: Vec<(f64, f64)> =
            l.acked_per_second.iter().enumerate().map(|(i, &n)| (i as f64 + 0.5, n as f64)).collect();
        c.draw_series(AreaSeries::new(thr, 0.0, GREEN.mix(0.25)).border_style(GREEN.stroke_width(2)))?;
        root.present()?;
        Ok(())
    })();
    drawn.ok().map(|_| svg)
}

fn points<T: Copy>(v: &[Option<T>], f: impl Fn(T) -> f64) -> Vec<(f64, f64)> {
    v.iter().enumerate().filter_map(|(i, x)| x.map(|x| (i as f64 + 0.5, f(x).max(0.1)))).collect()
}

/// A mermaid `xychart-beta` of acknowledged writes per second (at most 40 bars), titled with
/// the fault window; only numbers and fixed words go into it, never scenario text.
pub fn mermaid(s: &ScenarioResult) -> Option<String> {
    let l = s.liveness.as_ref()?;
    if l.acked_per_second.is_empty() {
        return None;
    }
    let per = l.acked_per_second.len().div_ceil(40);
    let bars: Vec<f64> =
        l.acked_per_second.chunks(per).map(|c| c.iter().map(|&n| n as f64).sum::<f64>() / c.len() as f64).collect();
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
