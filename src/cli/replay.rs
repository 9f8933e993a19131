//! Which runs `chronik-chaos chaos` makes beyond the plain selection: the runs a results.json
//! recorded, replayed with their schedules pinned (`--replay`), and repetitions of a scenario
//! (`--repeat`, `--until-fail`), each named apart so their histories do not collide.

use std::path::Path;

use anyhow::{bail, Context as _};

use crate::results::Results;
use crate::scenario::Scenario;

/// Marks a repetition in a run's name: `baseline#3`.
pub const REPEAT_MARK: char = '#';
/// Marks the smallest failing schedule a shrink found: `kill-loop~smallest`.
pub const SMALLEST: &str = "~smallest";

/// The scenario a run's name belongs to: `baseline#3` → `baseline`, `x~smallest` → `x`.
pub fn base_name(run: &str) -> &str {
    let run = run.strip_suffix(SMALLEST).unwrap_or(run);
    run.split(REPEAT_MARK).next().unwrap_or(run)
}

/// The `k`-th repetition of `s` (from 1).
pub fn repetition(s: &Scenario, k: u32) -> Scenario {
    Scenario { name: format!("{}{REPEAT_MARK}{k}", s.name), ..s.clone() }
}

/// The runs `names` of the results file at `path` (all of them when `names` is empty), each as
/// its scenario from `catalogue` with the recorded schedule to replay, and the file's seed.
pub fn replay_runs(path: &Path, names: &[String], catalogue: &[Scenario]) -> anyhow::Result<(u64, Vec<Scenario>)> {
    let results = Results::read(path).map_err(|e| anyhow::anyhow!("--replay {}: {e}", path.display()))?;
    let wanted: Vec<String> =
        if names.is_empty() { results.scenarios.iter().map(|s| s.name.clone()).collect() } else { names.to_vec() };
    let mut out = Vec::new();
    for name in &wanted {
        let run = results.scenarios.iter().find(|s| s.name == base_of_smallest(name)).with_context(|| {
            let there: Vec<&str> = results.scenarios.iter().map(|s| s.name.as_str()).collect();
            format!("--replay {}: no run named `{name}` in it; it holds: {}", path.display(), there.join(", "))
        })?;
        let schedule = if name.ends_with(SMALLEST) {
            match &run.shrunk {
                Some(s) => s.smallest.clone(),
                None => bail!("--replay {}: run `{}` was not shrunk, so it has no `{name}`", path.display(), run.name),
            }
        } else {
            run.schedule.clone().unwrap_or_default()
        };
        let base = base_name(name);
        let scenario = catalogue.iter().find(|s| s.name == base).with_context(|| {
            format!(
                "--replay: run `{name}` is scenario `{base}`, which is not in the catalogue; add its file with --scenarios-file"
            )
        })?;
        if run.schedule.is_none() && !name.ends_with(SMALLEST) && !scenario.faults.is_empty() {
            bail!(
                "--replay {}: run `{name}` recorded no schedule (it ended before its faults were planned), so there \
                 is nothing to replay; run it again with --seed {} --scenario {base}",
                path.display(),
                run.seed
            );
        }
        // The recorded cluster size, so roles pinned to n4 or n5 find their nodes.
        let nodes = run.nodes.or(scenario.nodes);
        out.push(Scenario { name: name.clone(), replay: Some(schedule), nodes, ..scenario.clone() });
    }
    Ok((results.seed, out))
}

/// `x~smallest` is found under its run `x`.
fn base_of_smallest(name: &str) -> &str {
    name.strip_suffix(SMALLEST).unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_lead_back_to_their_scenario() {
        assert_eq!(base_name("baseline"), "baseline");
        assert_eq!(base_name("baseline#12"), "baseline");
        assert_eq!(base_name("kill-loop~smallest"), "kill-loop");
        assert_eq!(base_name("kill-loop#2~smallest"), "kill-loop");
        let s = crate::scenario::builtin().remove(0);
        assert_eq!(repetition(&s, 3).name, format!("{}#3", s.name));
    }

    /// A results file with a repetition of kill-leader that was shrunk, and a baseline.
    fn recorded(dir: &Path) -> std::path::PathBuf {
        use crate::schedule::{Schedule, Shrunk, Step};
        let mut r: Results = serde_json::from_str(include_str!("../../tests/fixtures/results-all-pass.json")).unwrap();
        let step = |start_ms, end_ms| Step {
            fault: crate::scenario::Fault::Kill(crate::scenario::Target::Leader),
            start_ms,
            end_ms,
            targets: [("leader".to_string(), 2)].into(),
        };
        let template = r.scenarios[0].clone();
        let ran = Schedule::new(vec![step(0, 15_000), step(20_000, 30_000)]);
        let smallest = Schedule::new(vec![step(0, 2_000)]);
        r.seed = 31;
        r.scenarios = vec![
            crate::results::ScenarioResult {
                name: "kill-leader#2".into(),
                schedule: Some(ran.clone()),
                nodes: Some(5),
                shrunk: Some(Shrunk { original: ran, smallest, tries: 4, exhausted_budget: false }),
                ..template.clone()
            },
            crate::results::ScenarioResult { name: "baseline".into(), schedule: None, ..template.clone() },
            // Ended before its faults were planned (e.g. the cluster never started).
            crate::results::ScenarioResult {
                name: "isolate-leader".into(),
                schedule: None,
                nodes: Some(5),
                seed: 44,
                ..template
            },
        ];
        let path = dir.join("results.json");
        r.write(&path).unwrap();
        path
    }

    #[test]
    fn a_replay_pins_each_recorded_schedule_to_its_scenario() {
        let dir = tempfile::tempdir().unwrap();
        let path = recorded(dir.path());
        let catalogue = crate::scenario::builtin();
        let (seed, runs) = replay_runs(&path, &["kill-leader#2".into(), "baseline".into()], &catalogue).unwrap();
        assert_eq!(seed, 31);
        assert_eq!(runs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["kill-leader#2", "baseline"]);
        let ran = runs[0].schedule(99).unwrap();
        assert_eq!((ran.steps.len(), ran.steps[1].start_ms, ran.steps[0].targets["leader"]), (2, 20_000, 2));
        assert_eq!(runs[0].description, catalogue.iter().find(|s| s.name == "kill-leader").unwrap().description);
        // The recorded cluster size goes with the replay; an older file's run keeps the scenario's.
        assert_eq!((runs[0].nodes, runs[1].nodes), (Some(5), None));
        // A run without a fault replays as none.
        assert!(runs[1].schedule(99).unwrap().steps.is_empty());
        let (_, smallest) = replay_runs(&path, &["kill-leader#2~smallest".into()], &catalogue).unwrap();
        assert_eq!(smallest[0].schedule(1).unwrap().steps.len(), 1);
        let e = replay_runs(&path, &["bridge".into()], &catalogue).unwrap_err().to_string();
        assert!(e.contains("no run named `bridge` in it; it holds: kill-leader#2, baseline, isolate-leader"), "{e}");
        // A faulty scenario's run without a recorded schedule is not replayed as no fault.
        let e = replay_runs(&path, &[], &catalogue).unwrap_err().to_string();
        assert!(
            e.contains("run `isolate-leader` recorded no schedule")
                && e.contains("run it again with --seed 44 --scenario isolate-leader"),
            "{e}"
        );
        let e = replay_runs(&path, &["baseline~smallest".into()], &catalogue).unwrap_err().to_string();
        assert!(e.contains("run `baseline` was not shrunk"), "{e}");
        let e = replay_runs(&path, &["baseline".into()], &catalogue[1..]).unwrap_err().to_string();
        assert!(e.contains("which is not in the catalogue; add its file with --scenarios-file"), "{e}");
    }
}
