//! `scripts/fetch-baseline.sh` (the Action's base-branch comparison) against a stand-in GitHub
//! CLI: a fake `gh` on PATH that logs its arguments and answers as a scripted GitHub would. A
//! baseline is found and named in `$GITHUB_OUTPUT`; everything missing is one line and exit 0.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/fetch-baseline.sh");

/// The fake `gh`: `run list` prints `$FAKE_RUN` (or fails with `FAKE_LIST_FAILS`); `run
/// download` writes `results.json` into `--dir` when `FAKE_ARTIFACT=yes`, an empty artifact
/// when `FAKE_ARTIFACT=empty`, and fails otherwise. Every call is appended to `$FAKE_LOG`.
const FAKE_GH: &str = r#"#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
case "$1 $2" in
  "run list")
    if [ -n "${FAKE_LIST_FAILS:-}" ]; then echo "HTTP 401: Bad credentials" >&2; exit 1; fi
    printf '%s\n' "${FAKE_RUN:-}"
    ;;
  "run download")
    dir=""
    while [ $# -gt 0 ]; do
      if [ "$1" = "--dir" ]; then dir="$2"; fi
      shift
    done
    case "${FAKE_ARTIFACT:-}" in
      yes) echo '{"version":1}' > "$dir/results.json" ;;
      empty) : ;;
      *) echo "no artifact matches any of the names or patterns provided" >&2; exit 1 ;;
    esac
    ;;
esac
"#;

struct Run {
    out: Output,
    github_output: String,
    calls: String,
    dir: PathBuf,
}

fn fetch(tmp: &Path, env: &[(&str, &str)]) -> Run {
    let bin = tmp.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let gh = bin.join("gh");
    std::fs::write(&gh, FAKE_GH).unwrap();
    std::fs::set_permissions(&gh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (log, outputs, dir) = (tmp.join("calls.log"), tmp.join("github_output"), tmp.join("baseline"));
    std::fs::write(&log, "").unwrap();
    std::fs::write(&outputs, "").unwrap();
    let mut c = Command::new("bash");
    c.arg(SCRIPT)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("FAKE_LOG", &log)
        .env("GITHUB_OUTPUT", &outputs)
        .env("GITHUB_REPOSITORY", "acme/chronik")
        .env("GITHUB_WORKFLOW_REF", "acme/chronik/.github/workflows/chaos.yml@refs/pull/7/merge")
        .env("CHAOS_ARTIFACT_NAME", "chronik-chaos-chaos")
        .env("CHAOS_BASELINE_DIR", &dir);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    Run {
        github_output: std::fs::read_to_string(&outputs).unwrap(),
        calls: std::fs::read_to_string(&log).unwrap(),
        out,
        dir,
    }
}

fn said(r: &Run) -> String {
    format!("{}{}", String::from_utf8_lossy(&r.out.stdout), String::from_utf8_lossy(&r.out.stderr))
}

#[test]
fn the_base_branch_artifact_becomes_the_baseline() {
    let tmp = tempfile::tempdir().unwrap();
    let r = fetch(tmp.path(), &[("GITHUB_BASE_REF", "main"), ("FAKE_RUN", "4242"), ("FAKE_ARTIFACT", "yes")]);
    assert_eq!(r.out.status.code(), Some(0), "{}", said(&r));
    assert_eq!(r.github_output, format!("baseline={}/results.json\n", r.dir.display()));
    assert!(said(&r).contains("comparing with run 4242 of chaos.yml on main"), "{}", said(&r));
    // The same workflow file, the base branch, successful runs only; this job's artifact name.
    let calls: Vec<&str> = r.calls.lines().collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls[0].starts_with("run list --repo acme/chronik --workflow chaos.yml --branch main --status success"));
    assert!(calls[1].starts_with("run download 4242 --repo acme/chronik --name chronik-chaos-chaos --dir "));
}

#[test]
fn anything_missing_is_one_line_and_never_a_failure() {
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[], "not a pull request"),
        (
            &[("GITHUB_BASE_REF", "main"), ("FAKE_LIST_FAILS", "1")],
            "could not list runs of chaos.yml on main (HTTP 401",
        ),
        (&[("GITHUB_BASE_REF", "main"), ("FAKE_RUN", "")], "no successful run of chaos.yml on main yet"),
        (
            &[("GITHUB_BASE_REF", "main"), ("FAKE_RUN", "9"), ("FAKE_ARTIFACT", "none")],
            "run 9 of chaos.yml on main has no artifact chronik-chaos-chaos",
        ),
        (
            &[("GITHUB_BASE_REF", "main"), ("FAKE_RUN", "9"), ("FAKE_ARTIFACT", "empty")],
            "artifact chronik-chaos-chaos of run 9 has no results.json",
        ),
    ];
    for (env, want) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let r = fetch(tmp.path(), env);
        assert_eq!(r.out.status.code(), Some(0), "{env:?}: {}", said(&r));
        assert!(said(&r).contains(want), "{env:?}: {}", said(&r));
        assert_eq!(said(&r).lines().count(), 1, "{env:?}: one line: {}", said(&r));
        assert_eq!(r.github_output, "", "{env:?}: no baseline output");
    }
}
