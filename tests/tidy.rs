//! Tidy checks for repository conventions: `//!` headers, the code map kept true, a thin
//! xtask, the README's test command being the one CI runs, and the workflows in the docs passing
//! actionlint (when it is installed).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn all_rust_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["src", "xtask/src", "tests", "benches"] {
        rust_files(&root().join(dir), &mut files);
    }
    files.sort();
    files
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap().display().to_string()
}

#[test]
fn every_source_file_opens_with_a_module_doc() {
    let missing: Vec<String> = all_rust_files()
        .into_iter()
        .filter(|p| !std::fs::read_to_string(p).unwrap().starts_with("//!"))
        .map(|p| rel(&p))
        .collect();
    assert!(missing.is_empty(), "files without a leading `//!` line saying what they own: {missing:?}");
}

#[test]
fn architecture_code_map_names_every_source_file() {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap();
    let mut missing = Vec::new();
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    rust_files(&root().join("xtask/src"), &mut files);
    for p in files {
        let r = rel(&p);
        let named = if p.file_name().unwrap() == "mod.rs" {
            // A module directory is named by its path.
            doc.contains(&format!("{}/", rel(p.parent().unwrap())))
        } else {
            doc.contains(&r) || doc.contains(&format!("`{}`", p.file_name().unwrap().to_str().unwrap()))
        };
        if !named {
            missing.push(r);
        }
    }
    assert!(missing.is_empty(), "docs/ARCHITECTURE.md's code map does not mention: {missing:?}");
}

#[test]
fn xtask_stays_thin() {
    let manifest = std::fs::read_to_string(root().join("xtask/Cargo.toml")).unwrap();
    for heavy in ["tokio", "reqwest", "rdkafka", "octocrab", "hyper", "chronik-chaos"] {
        assert!(
            !manifest.lines().any(|l| l.trim_start().starts_with(heavy)),
            "xtask must not depend on {heavy}: it builds and runs the chronik-chaos binary instead"
        );
    }
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    let test_line = readme
        .lines()
        .find(|l| l.trim_start().starts_with("cargo test"))
        .expect("the README names a `cargo test` command");
    let command = test_line.split('#').next().unwrap().trim();
    assert!(
        ci.lines().any(|l| l.trim().starts_with(command)),
        "`.ci/run` must run the README's test command `{command}`"
    );
}

#[test]
#[ignore = "needs actionlint; .ci/run installs it from .ci/requirements.txt and runs this"]
fn docs_workflow_examples_pass_actionlint() {
    let doc = std::fs::read_to_string(root().join("docs/github.md")).unwrap();
    let workflows: Vec<&str> = doc
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter(|b| b.starts_with("name:"))
        .collect();
    assert!(workflows.len() >= 3, "docs/github.md shows the workflows it documents");
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join(".github/workflows");
    std::fs::create_dir_all(&wf).unwrap();
    let files: Vec<PathBuf> = workflows
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let f = wf.join(format!("example-{i}.yml"));
            std::fs::write(&f, w).unwrap();
            f
        })
        .collect();
    let out =
        match std::process::Command::new("actionlint").arg("-no-color").args(&files).current_dir(dir.path()).output() {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("actionlint is not on PATH (.ci/run installs it from .ci/requirements.txt)")
            }
            Err(e) => panic!("running actionlint: {e}"),
        };
    assert!(
        out.status.success(),
        "actionlint on the workflows in docs/github.md:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The names at two spaces' indent under a top-level `key:` of a YAML file.
fn yaml_section_keys(text: &str, key: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            inside = line.trim_end() == format!("{key}:");
            continue;
        }
        if inside {
            if let Some(rest) = line.strip_prefix("  ") {
                if !rest.starts_with(' ') && !rest.starts_with('#') {
                    if let Some((name, _)) = rest.split_once(':') {
                        keys.push(name.to_string());
                    }
                }
            }
        }
    }
    keys
}

#[test]
fn every_action_input_and_output_is_documented_in_the_readme() {
    let action = std::fs::read_to_string(root().join("action.yml")).unwrap();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let inputs = yaml_section_keys(&action, "inputs");
    let outputs = yaml_section_keys(&action, "outputs");
    assert!(inputs.len() >= 10 && outputs.len() >= 5, "parsed {inputs:?} and {outputs:?}");
    let undocumented: Vec<&String> =
        inputs.iter().chain(&outputs).filter(|name| !readme.contains(&format!("| `{name}` |"))).collect();
    assert!(undocumented.is_empty(), "README.md's action tables do not document: {undocumented:?}");
    // Every input reaches the scripts through `env:`, never through `${{ }}` inside `run:`.
    let mut run_indent: Option<usize> = None;
    for (i, line) in action.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        if run_indent.is_some_and(|r| indent <= r && !line.trim().is_empty()) {
            run_indent = None;
        }
        if line.trim_start().starts_with("run:") {
            run_indent = Some(indent);
        }
        if run_indent.is_some() {
            assert!(!line.contains("${{"), "action.yml line {}: an expression inside run:, use env:", i + 1);
        }
    }
}
