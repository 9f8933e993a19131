//! `chronik-chaos merge`: a seven-scenario results file cut into three shards and merged back
//! gives the same results.json (no shard, the selection kept) and byte-identical junit.xml,
//! report.md and plots; a missing shard, a shard given twice and a different seed are refused
//! with exit 2 naming the file or the shard.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chronik_chaos::results::{Results, Shard, Sharding};
use chronik_chaos::scenario::shard_of;

const BIN: &str = env!("CARGO_BIN_EXE_chronik-chaos");

fn original() -> Results {
    serde_json::from_str(include_str!("fixtures/results-reasons.json")).unwrap()
}

/// `chronik-chaos ARGS` with no GitHub Actions variables (they change what is rendered).
fn run(args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    for var in [
        "GITHUB_ACTIONS",
        "GITHUB_STEP_SUMMARY",
        "GITHUB_OUTPUT",
        "GITHUB_SERVER_URL",
        "GITHUB_REPOSITORY",
        "GITHUB_RUN_ID",
    ] {
        cmd.env_remove(var);
    }
    cmd.args(args).output().unwrap()
}

/// Cuts `r` into `n` shards as `chaos --shard K/N` would, each with its own times and its own
/// output directory on its own runner (`/runner-K/out`, which its paths are under), and writes
/// them to `dir/shard-K.json`.
fn split(r: &Results, n: u32, dir: &Path) -> Vec<PathBuf> {
    let selection: Vec<String> = r.scenarios.iter().map(|s| s.name.clone()).collect();
    (1..=n)
        .map(|k| {
            let shard = Shard { k, n };
            let mut part = r.clone();
            part.scenarios = shard_of(&r.scenarios, shard).into_iter().map(|(_, s)| s).collect();
            let out_dir = PathBuf::from(format!("/runner-{k}/out"));
            for s in &mut part.scenarios {
                s.history_file = s.history_file.as_ref().map(|h| out_dir.join(h));
                s.node_logs = s.node_logs.iter().map(|l| out_dir.join(l)).collect();
            }
            // The first shard started first, the last finished last.
            if k != 1 {
                part.started_at = format!("{}~later{k}", r.started_at);
            }
            if k != n {
                part.finished_at = format!("{}~earlier{k}", r.started_at);
            }
            let path = dir.join(format!("shard-{k}.json"));
            let sharding = Sharding { shard: Some(shard), selection: selection.clone(), out_dir: Some(out_dir) };
            part.write_with(&path, &sharding).unwrap();
            path
        })
        .collect()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn merged_shards_equal_the_whole_run_and_render_byte_identical_reports() {
    let dir = tempfile::tempdir().unwrap();
    let whole = original();
    assert!(whole.scenarios.len() >= 7 && whole.started_at < whole.finished_at);
    whole.write(&dir.path().join("whole/results.json")).unwrap();
    let shards = split(&whole, 3, dir.path());

    let o = run(&["report", "--results", dir.path().join("whole/results.json").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Shards in any order.
    let merged_dir = dir.path().join("merged");
    let o = run(&[
        "merge",
        "--out",
        merged_dir.to_str().unwrap(),
        shards[2].to_str().unwrap(),
        shards[0].to_str().unwrap(),
        shards[1].to_str().unwrap(),
    ]);
    // The fixture has scenarios that did not pass.
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("merged 3 shard(s), 7 scenario(s)"), "{}", text(&o));

    let (merged, sharding) = Results::read_with_sharding(&merged_dir.join("results.json")).unwrap();
    assert_eq!(merged, whole);
    assert_eq!(sharding.shard, None);
    assert_eq!(sharding.selection, whole.scenarios.iter().map(|s| s.name.clone()).collect::<Vec<_>>());

    for file in ["junit.xml", "report.md"] {
        let (a, b) = (read(dir.path().join("whole").join(file)), read(merged_dir.join(file)));
        assert!(
            a == b,
            "{file} differs:\n--- whole\n{}\n--- merged\n{}",
            String::from_utf8_lossy(&a),
            String::from_utf8_lossy(&b)
        );
    }
    let plots = |d: &Path| {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(d.join("plots"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), read(p)))
            .collect();
        v.sort();
        v
    };
    let whole_plots = plots(&dir.path().join("whole"));
    assert!(!whole_plots.is_empty());
    assert_eq!(whole_plots, plots(&merged_dir));

    // --fail-on never: the same merge exits 0.
    let again = dir.path().join("again");
    let mut args = vec!["merge", "--fail-on", "never", "--out", again.to_str().unwrap()];
    args.extend(shards.iter().map(|p| p.to_str().unwrap()));
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn shards_that_do_not_belong_together_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let shards = split(&original(), 3, dir.path());
    let out = dir.path().join("out");
    let merge = |files: &[&Path]| {
        let mut args = vec!["merge".to_string(), "--out".into(), out.to_str().unwrap().into()];
        args.extend(files.iter().map(|p| p.to_str().unwrap().to_string()));
        run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let refused = |o: Output, says: &[&str]| {
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        for s in says {
            assert!(text(&o).contains(s), "wanted {s:?} in:\n{}", text(&o));
        }
    };

    refused(merge(&[&shards[0], &shards[2]]), &["shard 2/3 missing"]);
    refused(
        merge(&[&shards[0], &shards[1], &shards[1], &shards[2]]),
        &[&format!("{}: shard 2/3 is also {}", shards[1].display(), shards[1].display())],
    );

    let (mut r, sharding) = Results::read_with_sharding(&shards[1]).unwrap();
    r.seed += 1;
    let other_seed = dir.path().join("other-seed.json");
    r.write_with(&other_seed, &sharding).unwrap();
    refused(
        merge(&[&shards[0], &other_seed, &shards[2]]),
        &[&format!("{}: seed 43 differs from 42 in {}", other_seed.display(), shards[0].display())],
    );

    // An interrupted shard (its last scenario missing) is not complete.
    let (mut r, sharding) = Results::read_with_sharding(&shards[2]).unwrap();
    r.scenarios.pop();
    let partial = dir.path().join("partial.json");
    r.write_with(&partial, &sharding).unwrap();
    refused(merge(&[&shards[0], &shards[1], &partial]), &[&format!("{}: shard 3/3 holds", partial.display())]);

    // A whole run's results.json has no shard.
    let whole = dir.path().join("whole.json");
    original().write(&whole).unwrap();
    refused(merge(&[&whole]), &[&format!("{}: has no `shard`", whole.display())]);
    assert!(!out.join("results.json").exists(), "a refused merge wrote results");
}

#[test]
fn bad_shard_flags_exit_2_naming_the_flag() {
    for bad in ["0/3", "4/3", "3", "1/0"] {
        let o = run(&["chaos", "--list", "--shard", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o));
        assert!(text(&o).contains("--shard <K/N>"), "{bad}: {}", text(&o));
    }
    // --list with --shard lists that shard's part of the selection, with its place in it.
    let o = run(&[
        "chaos",
        "--list",
        "--shard",
        "2/2",
        "--scenario",
        "baseline",
        "--scenario",
        "bridge",
        "--scenario",
        "slow-close",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let listed: Vec<(String, String)> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[0].to_string(), w[2].to_string())
        })
        .collect();
    assert_eq!(listed, [("bridge".to_string(), "#2".to_string())]);
}
