//! `cargo xtask` end to end. `chaos` with the stand-in broker in place of chronik-server (a
//! small replicating Kafka-protocol broker, not Chronik) and the embedded Toxiproxy: the whole
//! pipeline runs (workload, fault with its measured proof, checker, verdict), the scenario
//! passes with no anomaly, every output is written, and nothing is left running; SIGINT to
//! xtask tears the run down and exits 2. Also xtask's error paths, `-- --help`, the `--clone`
//! ref check, `doctor`, and (with a stand-in `cargo` on PATH) the environment, flags and quiet
//! output of the nested cargo build and the hand-off to the binary.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Runs held by the tests that start a cluster: every run binds Chronik's fixed ports.
static CLUSTER: Mutex<()> = Mutex::new(());

/// The variables cargo sets for a crate it runs (`cargo test` sets them for this test):
/// xtask's own list, so the test clears exactly what xtask clears.
#[path = "../xtask/src/cargo_env.rs"]
mod cargo_env;
use cargo_env::set_by_cargo_for_a_crate;

/// `cmd` without the variables cargo set for this test, and without the settings of the
/// user's shell that would change what the tests see.
fn clean(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(set_by_cargo_for_a_crate) {
            cmd.env_remove(k);
        }
    }
    for k in [
        "CHRONIK_CHAOS_PROFILE",
        "CHRONIK_CHAOS_CLONE_DIR",
        "TOXIPROXY_BIN",
        "CHRONIK_BIN",
        "GITHUB_ACTIONS",
        "GITHUB_STEP_SUMMARY",
        "GITHUB_TOKEN",
    ] {
        cmd.env_remove(k);
    }
    cmd
}

/// `cargo xtask ARGS` in `dir` (the alias, spelled out: cargo runs xtask by exec).
fn xtask_command(args: &[&str], dir: &Path) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    clean(&mut cmd).args(["run", "--quiet", "--package", "xtask", "--"]).args(args).current_dir(dir);
    cmd
}

fn xtask(args: &[&str], dir: &Path) -> Output {
    xtask_command(args, dir).output().expect("running cargo xtask")
}

/// The xtask executable itself (built once), for runs with a PATH that has no cargo.
fn xtask_exe() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = clean(&mut Command::new(cargo))
            .args(["build", "--quiet", "--package", "xtask"])
            .current_dir(ROOT)
            .status()
            .expect("running cargo build -p xtask");
        assert!(status.success(), "cargo build -p xtask failed");
        // Built into the same target directory as this test's binaries.
        let exe = Path::new(env!("CARGO_BIN_EXE_chronik-chaos")).with_file_name("xtask");
        assert!(exe.is_file(), "{} missing", exe.display());
        exe
    })
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn no_chronik_is_explained_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = xtask(&["chaos", "--scenario", "baseline", "--out", dir.path().to_str().unwrap()], Path::new(ROOT));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("no Chronik given") && t.contains("--chronik-dir DIR") && t.contains("--clone"), "{t}");
}

#[test]
fn a_bad_scenario_name_lists_the_valid_ones_before_any_build() {
    let out = xtask(&["chaos", "--chronik-dir", "/nonexistent", "--scenario", "no-such"], Path::new(ROOT));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("no scenario named `no-such`; valid names: baseline, client-latency"), "{t}");
    assert!(!t.contains("cargo metadata"), "nothing was built: {t}");
}

#[test]
fn an_unwritable_out_dir_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out_dir = file.join("out");
    let out = xtask(&["chaos", "--chronik-bin", "/bin/true", "--out", out_dir.to_str().unwrap()], Path::new(ROOT));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("cannot create the output directory"), "{}", text(&out));
}

#[test]
fn list_needs_no_chronik() {
    let out = xtask(&["chaos", "--list"], Path::new(ROOT));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("cascading-failure"));
}

#[test]
fn help_after_the_double_dash_prints_the_binary_help_and_does_nothing_else() {
    for help in ["--help", "-h", "help"] {
        let out = xtask(&["chaos", "--chronik-dir", "/nonexistent", "--", help], Path::new(ROOT));
        let t = text(&out);
        assert_eq!(out.status.code(), Some(0), "{help}: {t}");
        // The binary's `chaos` flags, the ones that go after `--`.
        assert!(t.contains("--base-port") && t.contains("--ready-timeout"), "{help}: {t}");
        // Nothing checked or built after the help: no dry run, no Chronik build.
        for after in ["scenario(s): ", "has no Cargo.toml", "protoc found", "cargo metadata"] {
            assert!(!t.contains(after), "{help}: `{after}`: {t}");
        }
    }
}

/// Processes whose command line contains `marker`.
fn leftovers(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(marker) {
            found.push(format!("{}: {cmdline}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

#[test]
fn the_whole_pipeline_runs_writes_every_output_and_tears_down() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let scenarios = dir.path().join("e2e.toml");
    std::fs::write(
        &scenarios,
        r#"
[[scenario]]
name = "e2e-latency"
family = "latency"
description = "End-to-end check of the pipeline with stand-in nodes."
[scenario.phases]
warmup = 1
hold = 1
recovery = 1
final_read_deadline = 2
[[scenario.faults]]
kind = "toxic"
links = "clients"
toxic = { type = "latency", stream = "both", latency = 10 }
"#,
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let standin = env!("CARGO_BIN_EXE_chronik-stand-in-node");
    let out = xtask(
        &[
            "chaos",
            "--chronik-bin",
            standin,
            "--scenarios-file",
            scenarios.to_str().unwrap(),
            "--scenario",
            "e2e-latency",
            "--seed",
            "7",
            "--out",
            out_dir.to_str().unwrap(),
            "--comment",
            "never",
            "--",
            "--base-port",
            "24000",
            "--toxiproxy-listen",
            "127.0.0.1:24474",
            "--ready-timeout",
            "20",
            "--start-attempts",
            "1",
        ],
        Path::new(ROOT),
    );
    let t = text(&out);
    // The stand-in broker is correct: the scenario passes, so the exit code is 0.
    assert_eq!(out.status.code(), Some(0), "{t}");
    for f in ["results.json", "junit.xml", "report.md", "toxiproxy.log"] {
        assert!(out_dir.join(f).is_file(), "{f} missing; output:\n{t}");
    }
    let results = chronik_chaos::results::Results::read(&out_dir.join("results.json")).unwrap();
    assert_eq!(results.seed, 7);
    assert!(results.chronik.version.starts_with("chronik-chaos stand-in broker"), "{:?}", results.chronik);
    assert_eq!(results.scenarios.len(), 1);
    let s = &results.scenarios[0];
    assert_eq!(s.verdict, chronik_chaos::verdict::Verdict::Pass, "{:?}", s.explanation);
    assert!(s.counts.acked > 0 && s.anomalies == Default::default(), "{:?} {:?}", s.counts, s.anomalies.summary());
    assert!(s.fidelity.proven, "{:?}", s.fidelity);
    assert!(!s.node_logs.is_empty(), "node logs are kept");
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(md.contains("| e2e-latency | ✅ PASS |"), "{md}");
    let junit = std::fs::read_to_string(out_dir.join("junit.xml")).unwrap();
    assert!(junit.contains(r#"tests="1" failures="0" errors="0""#), "{junit}");
    assert!(t.contains("seed 7"), "progress names the seed: {t}");
    // Nothing of this run left: no stand-in node (their configs live under --out), no
    // embedded Toxiproxy.
    for marker in [out_dir.to_str().unwrap(), "127.0.0.1:24474"] {
        let left = leftovers(marker);
        assert!(left.is_empty(), "processes left behind: {left:?}");
    }
    for port in [24474u16, 24000 + 10, 24000 + 100 + 1] {
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(), "port {port} still taken");
    }
}

/// The output of `child` so far, both streams, collected by threads.
fn collect(child: &mut Child) -> Arc<Mutex<String>> {
    let all = Arc::new(Mutex::new(String::new()));
    let pipes: Vec<Box<dyn Read + Send>> = vec![
        Box::new(child.stdout.take().expect("stdout is piped")),
        Box::new(child.stderr.take().expect("stderr is piped")),
    ];
    for mut pipe in pipes {
        let all = all.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                all.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    all
}

/// Waits up to `limit` for `child` to exit.
fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Sends `signal` to the child alone (as `kill -SIG <pid>` does), waits up to `limit` for it to
/// exit, and returns its status with everything it printed.
fn signal_and_wait(
    child: &mut Child,
    output: &Mutex<String>,
    signal: nix::sys::signal::Signal,
    limit: Duration,
) -> (Option<std::process::ExitStatus>, String) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    let status = wait_exit(child, limit);
    // The reader threads finish with the pipes.
    std::thread::sleep(Duration::from_millis(200));
    (status, output.lock().unwrap().clone())
}

#[test]
fn sigint_to_xtask_alone_stops_the_run_tears_it_down_and_exits_2() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let listen = "127.0.0.1:25474";
    let mut child = xtask_command(
        &[
            "chaos",
            "--stand-in",
            "--scenario",
            "baseline",
            "--out",
            out_dir.to_str().unwrap(),
            "--comment",
            "never",
            "--",
            "--base-port",
            "25000",
            "--toxiproxy-listen",
            listen,
            "--ready-timeout",
            "20",
            "--start-attempts",
            "1",
        ],
        Path::new(ROOT),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("starting cargo xtask");
    let output = collect(&mut child);
    // `cargo run` execs xtask: this pid is xtask's once it runs.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let t = output.lock().unwrap().clone();
        if t.contains("nodes started") || t.contains("wiring proven") {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("xtask ended ({status}) before the cluster started:\n{t}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the cluster did not start within 10 minutes:\n{t}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // To xtask alone, as `kill -INT <pid>` does: xtask forwards it to the harness and waits.
    let (status, t) = signal_and_wait(&mut child, &output, nix::sys::signal::Signal::SIGINT, Duration::from_secs(120));
    let Some(status) = status else {
        let _ = child.kill();
        panic!("xtask did not exit within 120 s of SIGINT:\n{t}");
    };
    assert_eq!(status.code(), Some(2), "the documented code for an interrupted run:\n{t}");
    assert!(t.contains("interrupted") && t.contains("everything started was stopped"), "teardown reported:\n{t}");
    assert!(out_dir.join("results.json").is_file(), "partial results are written:\n{t}");
    // xtask waited for the harness: by now nothing of the run is left (the nodes' configs and
    // the harness's --out are under out_dir; the embedded Toxiproxy listens on `listen`).
    for marker in [out_dir.to_str().unwrap(), listen] {
        let left = leftovers(marker);
        assert!(left.is_empty(), "processes left behind: {left:?}\n{t}");
    }
}

#[test]
fn an_existing_clone_at_another_ref_is_refused_before_any_build() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("chronik-stream");
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false"])
            .args(["-c", "tag.gpgsign=false", "-c", "init.defaultBranch=main"])
            .args(args)
            .current_dir(&repo)
            .output()
            .expect("git is needed for --clone and this test");
        assert!(out.status.success(), "git {args:?}: {}", text(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    std::fs::create_dir(&repo).unwrap();
    git(&["init", "-q"]);
    std::fs::write(repo.join("Cargo.toml"), "[package]\nname = \"not-chronik\"\nversion = \"0.1.0\"\n").unwrap();
    git(&["add", "Cargo.toml"]);
    git(&["commit", "-q", "-m", "one"]);
    git(&["tag", "v1.0.0"]);
    git(&["commit", "-q", "--allow-empty", "-m", "two"]);
    git(&["tag", "v2.0.0"]);
    let v1 = git(&["rev-parse", "v1.0.0"]);
    let v2 = git(&["rev-parse", "v2.0.0"]);
    let out_dir = dir.path().join("out");
    let run = |git_ref: &str| {
        let mut cmd = xtask_command(
            &["chaos", "--clone", "--chronik-ref", git_ref, "--out", out_dir.to_str().unwrap()],
            Path::new(ROOT),
        );
        cmd.env("CHRONIK_CHAOS_CLONE_DIR", &repo).output().expect("running cargo xtask")
    };

    let out = run("v1.0.0");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains(&format!("is a clone at {} (v2.0.0), not at --chronik-ref v1.0.0 ({})", &v2[..12], &v1[..12])),
        "names both commits: {t}"
    );
    assert!(t.contains(&format!("delete {}", repo.display())) && t.contains("--chronik-dir"), "{t}");
    assert!(!t.contains("scenario(s): ") && !t.contains("building"), "refused before any check or build: {t}");

    let out = run("v9.9.9");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("which does not know --chronik-ref v9.9.9") && t.contains(&v2[..12]), "{t}");

    // At the requested ref the clone is used (the run then stops later: it is not Chronik).
    let out = run("v2.0.0");
    let t = text(&out);
    assert!(t.contains(&format!("using the existing clone {} at v2.0.0", repo.display())), "{t}");
    assert!(!t.contains("not at --chronik-ref"), "{t}");
}

/// Parses doctor's check lines: (status, name, text).
fn doctor_lines(out: &str) -> Vec<(String, String, String)> {
    out.lines()
        .filter_map(|l| {
            let (status, rest) = l.split_once(char::is_whitespace)?;
            let (name, text) = rest.trim_start().split_once(char::is_whitespace)?;
            matches!(status, "ok" | "missing").then(|| (status.to_string(), name.to_string(), text.trim().to_string()))
        })
        .collect()
}

const DOCTOR_CHECKS: [&str; 12] =
    ["cc", "c++", "make", "protoc", "python3", "curl", "sha256sum", "ip", "nft", "libfaketime", "git", "toxiproxy"];

#[test]
fn doctor_prints_one_line_per_check_and_an_exit_code_to_match() {
    let out = xtask(&["doctor"], Path::new(ROOT));
    let t = text(&out);
    let lines = doctor_lines(&String::from_utf8_lossy(&out.stdout));
    for check in DOCTOR_CHECKS {
        assert_eq!(lines.iter().filter(|(_, name, _)| name == check).count(), 1, "one line for {check}:\n{t}");
    }
    let required_missing = lines.iter().any(|(status, _, text)| status == "missing" && text.starts_with("required"));
    assert_eq!(out.status.code(), Some(if required_missing { 1 } else { 0 }), "{t}");
    assert!(!t.contains("building the harness"), "doctor builds nothing: {t}");
}

#[test]
fn doctor_names_what_is_missing_and_fails_only_for_required_tools() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    write_script(&bin.join("cc"), "echo 'cc (fake) 1.0'\n");
    write_script(&bin.join("c++"), "echo 'c++ (fake) 1.0'\n");
    write_script(&bin.join("make"), "echo 'GNU Make (fake) 4.3'\n");
    write_script(&bin.join("toxiproxy-server"), "echo 'toxiproxy-server version 9.9.9'\n");
    let doctor = |path: &Path| {
        let mut cmd = Command::new(xtask_exe());
        clean(&mut cmd).arg("doctor").env("PATH", path).env_remove("CC").env_remove("CXX").env_remove("PROTOC");
        cmd.output().expect("running xtask doctor")
    };

    // Only the required tools (and a real Toxiproxy) on PATH: exit 0, the optional ones missing.
    let out = doctor(&bin);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let lines = doctor_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(lines.len(), DOCTOR_CHECKS.len(), "{t}");
    let line = |name: &str| lines.iter().find(|(_, n, _)| n == name).unwrap_or_else(|| panic!("{name}: {t}")).clone();
    assert_eq!(line("make"), ("ok".into(), "make".into(), "GNU Make (fake) 4.3".into()));
    let (status, _, protoc) = line("protoc");
    assert!(status == "missing" && protoc.contains("optional: only to build Chronik"), "{protoc}");
    assert!(protoc.contains("apt-get install protobuf-compiler"), "{protoc}");
    let (status, _, python) = line("python3");
    assert!(status == "missing" && python.contains("python3-venv") && python.contains(".ci/run"), "{python}");
    let (status, _, toxiproxy) = line("toxiproxy");
    assert!(status == "ok" && toxiproxy.contains("(from PATH): toxiproxy-server version 9.9.9"), "{toxiproxy}");

    // Without make: exit 1, and the summary names it.
    std::fs::remove_file(bin.join("make")).unwrap();
    std::fs::remove_file(bin.join("toxiproxy-server")).unwrap();
    let out = doctor(&bin);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("required and missing: make"), "{t}");
    assert!(t.contains("embedded compatible server will be used"), "no real Toxiproxy is not a failure: {t}");
}

/// A stand-in `cargo` (records its environment and arguments, prints build messages naming a
/// stand-in harness) and that harness (records the same, then exits 1, or 3 on SIGTERM).
fn fake_toolchain(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let harness = dir.join("harness");
    write_script(
        &bin.join("cargo"),
        &format!(
            r#"env > "{d}/cargo.env"
printf '%s\n' "$@" > "{d}/cargo.args"
echo '{{"reason":"compiler-artifact","fresh":'"$FAKE_FRESH"',"target":{{"name":"ring","kind":["lib"]}},"executable":null}}'
echo '{{"reason":"compiler-artifact","fresh":'"$FAKE_FRESH"',"target":{{"name":"chronik-chaos","kind":["bin"]}},"executable":"{h}"}}'
echo '{{"reason":"build-finished","success":true}}'
"#,
            d = dir.display(),
            h = harness.display()
        ),
    );
    write_script(
        &harness,
        &format!(
            r#"env > "{d}/harness.env"
printf '%s\n' "$@" > "{d}/harness.args"
if [ -n "$FAKE_WAIT" ]; then
  trap 'echo "harness: got SIGTERM"; exit 3' TERM
  echo "harness: waiting"
  while :; do sleep 0.05; done
fi
exit 1
"#,
            d = dir.display()
        ),
    );
    bin
}

#[test]
fn the_nested_build_gets_a_clean_environment_the_test_build_selection_and_stays_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake_toolchain(dir.path());
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let run = |args: &[&str], fresh: bool, envs: &[(&str, &str)]| {
        let mut cmd = Command::new(xtask_exe());
        clean(&mut cmd)
            .args(args)
            .env("PATH", &path)
            .env("FAKE_FRESH", fresh.to_string())
            // What `cargo run` sets for xtask, and cargo configuration that must pass through.
            .env("CARGO_MANIFEST_DIR", Path::new(ROOT).join("xtask"))
            .env("CARGO_MANIFEST_PATH", Path::new(ROOT).join("xtask/Cargo.toml"))
            .env("CARGO_PKG_NAME", "xtask")
            .env("CARGO_PKG_VERSION", "0.0.0")
            .env("OUT_DIR", "/nonexistent/out")
            .env("CARGO_BUILD_JOBS", "1")
            .envs(envs.iter().copied());
        cmd.output().expect("running xtask")
    };
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();

    let out = run(&["chaos", "--list"], false, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "the harness's exit code passes through: {t}");
    assert_eq!(t.matches("xtask: building the harness").count(), 1, "said once, when compiling: {t}");
    let cargo_env = read("cargo.env");
    for gone in ["CARGO_MANIFEST_DIR=", "CARGO_MANIFEST_PATH=", "CARGO_PKG_NAME=", "CARGO_PKG_VERSION=", "OUT_DIR="] {
        assert!(!cargo_env.lines().any(|l| l.starts_with(gone)), "nested cargo inherited {gone}");
    }
    assert!(cargo_env.lines().any(|l| l == "CARGO_BUILD_JOBS=1"), "cargo configuration passes through");
    let args: Vec<String> = read("cargo.args").lines().map(String::from).collect();
    // `cargo test --workspace`'s selection (features with dev-dependencies), dev profile, quiet.
    for a in ["build", "--quiet", "--message-format=json-render-diagnostics", "--workspace", "--examples"] {
        assert!(args.iter().any(|x| x == a), "{a} missing from {args:?}");
    }
    assert!(args.windows(2).any(|w| w == ["--bin", "chronik-chaos"]), "{args:?}");
    assert!(!args.iter().any(|x| x == "--release"), "{args:?}");
    let harness_env = read("harness.env");
    assert!(harness_env.lines().any(|l| l == "CHRONIK_CHAOS_INVOKED_AS=cargo xtask chaos"), "{harness_env}");
    assert!(!harness_env.lines().any(|l| l.starts_with("CARGO_MANIFEST_DIR=")), "{harness_env}");
    assert_eq!(read("harness.args"), "chaos\n--list\n");

    // Nothing to compile: silent. CHRONIK_CHAOS_PROFILE=release builds with --release.
    let out = run(&["toxiproxy", "status"], true, &[("CHRONIK_CHAOS_PROFILE", "release")]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(!t.contains("building"), "nothing compiled, nothing said: {t}");
    assert!(read("cargo.args").lines().any(|l| l == "--release"), "{}", read("cargo.args"));
    assert!(read("harness.env").lines().any(|l| l == "CHRONIK_CHAOS_INVOKED_AS=cargo xtask toxiproxy"));

    let out = run(&["cluster", "status"], true, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(read("harness.env").lines().any(|l| l == "CHRONIK_CHAOS_INVOKED_AS=cargo xtask cluster"));

    let out = run(&["chaos", "--list"], true, &[("CHRONIK_CHAOS_PROFILE", "fast")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("CHRONIK_CHAOS_PROFILE=fast: expected `dev`"), "{}", text(&out));
}

#[test]
fn sigterm_to_xtask_is_forwarded_and_xtask_exits_with_the_harness_code() {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake_toolchain(dir.path());
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = Command::new(xtask_exe());
    clean(&mut cmd)
        .args(["chaos", "--list"])
        .env("PATH", &path)
        .env("FAKE_FRESH", "true")
        .env("FAKE_WAIT", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let output = collect(&mut child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !output.lock().unwrap().contains("harness: waiting") {
        assert!(Instant::now() < deadline, "the harness never started: {}", output.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, t) = signal_and_wait(&mut child, &output, nix::sys::signal::Signal::SIGTERM, Duration::from_secs(30));
    assert_eq!(status.and_then(|s| s.code()), Some(3), "xtask waited and passed the harness's code on: {t}");
    assert!(t.contains("harness: got SIGTERM"), "{t}");
}
