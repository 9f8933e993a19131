//! `cargo xtask`: thin entry points that build the `chronik-chaos` binary with cargo and hand off
//! to it; also the nested-cargo environment, the quiet harness build and signal forwarding.

mod bench;
mod cargo_env;
mod chaos;
mod chronik;
mod cluster;
mod doctor;
mod toxiproxy;

use cargo_env::set_by_cargo_for_a_crate;
use std::ffi::OsString;
use std::io::BufRead;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use xshell::Shell;

/// Project tasks for chronik-chaos. Each builds what it needs with cargo, then runs it.
///
/// The `chronik-chaos` binary is built in the dev profile, the very artifact `cargo test
/// --workspace` builds (so after the tests nothing is compiled); set
/// CHRONIK_CHAOS_PROFILE=release for an optimised build in target/release. The build is silent
/// unless something has to be compiled.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", max_term_width = 100)]
struct Xtask {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build Chronik, run the chaos suite on a cluster behind Toxiproxy, write the reports.
    ///
    /// Order of work: the flags, the scenario selection, scenario files, output directory, ports
    /// and Toxiproxy choice are checked first (seconds); then Chronik is built (a cold build
    /// takes tens of minutes); then every scenario runs on a fresh three-node cluster behind
    /// Toxiproxy; then everything is torn down and junit.xml, report.md, results.json, plots/,
    /// histories and node logs are written to --out.
    ///
    /// `cargo xtask chaos -- --help` prints the flags that go after `--`.
    ///
    /// Exit codes: 0 every scenario passed; 1 a scenario FAILed, HUNG or ERRORed (the reports
    /// are written); 2 the harness could not run (bad input, build failure, ports taken,
    /// interrupted: Ctrl-C or SIGTERM stops everything started, then exits 2).
    Chaos(chaos::Chaos),
    /// Start, inspect, reset or stop a Toxiproxy server (replaces test_toxiproxy_setup.sh).
    Toxiproxy(toxiproxy::Toxiproxy),
    /// Start, inspect or stop a Chronik cluster wired through proxies (replaces tests/cluster/*.sh).
    Cluster(cluster::Cluster),
    /// Build chronik-server in a Chronik checkout.
    Chronik(chronik::Chronik),
    /// Print performance figures (benchmarks, not tests).
    Bench(bench::Bench),
    /// Check this machine for the tools the builds and scripts need (builds nothing).
    ///
    /// One line per tool: `ok` with the version found, or `missing` with whether it is required
    /// or optional, what needs it and the Debian/Ubuntu package to install. Required: a C and a
    /// C++ compiler and make (the harness's build compiles C and C++). Optional: protoc (only to
    /// build Chronik), python3 with venv (.ci/run), curl and sha256sum
    /// (scripts/install-toxiproxy.sh), git (--clone), and a real toxiproxy-server (without one
    /// the embedded compatible server is used).
    ///
    /// Exit codes: 0 every required tool is present; 1 one is missing, or $TOXIPROXY_BIN names a
    /// server that does not run.
    Doctor(doctor::Doctor),
    /// Build the chronik-chaos binary as `chaos` does and print its path.
    ///
    /// For a later step that runs the binary but must not run cargo, such as the composite
    /// action's base-branch lookup, which holds a token that build scripts must never see.
    Harness,
}

fn main() -> std::process::ExitCode {
    let xtask = Xtask::parse();
    install_signal_handlers();
    let sh = match Shell::new() {
        Ok(sh) => sh,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    sh.change_dir(project_root());
    let result = match xtask.task {
        Task::Chaos(c) => c.run(&sh),
        Task::Toxiproxy(t) => t.run(),
        Task::Cluster(c) => c.run(&sh),
        Task::Chronik(c) => c.run(&sh),
        Task::Bench(b) => b.run(&sh),
        Task::Doctor(d) => Ok(d.run()),
        Task::Harness => build_harness(&[HARNESS]).map(|built| {
            println!("{}", built[0].display());
            0
        }),
    };
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// The workspace root (the parent of `xtask/`).
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace root").to_path_buf()
}

/// `p` made absolute against the directory cargo xtask was started from.
fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
    }
}

/// The cargo target directory (honours `CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => project_root().join(dir),
        None => project_root().join("target"),
    }
}

// ---------------------------------------------------------------------------------------------
// The environment of nested cargo calls.

/// The variables of this process that [`cargo_env::set_by_cargo_for_a_crate`] names.
fn cargo_crate_vars() -> Vec<OsString> {
    std::env::vars_os().map(|(k, _)| k).filter(|k| k.to_str().is_some_and(set_by_cargo_for_a_crate)).collect()
}

/// `cmd` (a nested cargo, or the harness) without the variables cargo set for xtask.
fn clean_command(mut cmd: Command) -> Command {
    for k in cargo_crate_vars() {
        cmd.env_remove(k);
    }
    cmd
}

/// An xshell `cmd` (a nested cargo) without the variables cargo set for xtask.
fn clean_cmd(mut cmd: xshell::Cmd<'_>) -> xshell::Cmd<'_> {
    for k in cargo_crate_vars() {
        cmd = cmd.env_remove(k);
    }
    cmd
}

// ---------------------------------------------------------------------------------------------
// The harness build.

/// The harness binary every task runs.
const HARNESS: &str = "chronik-chaos";
/// The stand-in broker node (`cargo xtask chaos --stand-in`).
const STAND_IN: &str = "chronik-stand-in-node";

/// Builds the `bins` of the chronik-chaos package and returns their paths, in order.
///
/// The dev profile by default, `--release` with `CHRONIK_CHAOS_PROFILE=release`. The package
/// selection is `cargo test --workspace`'s: with `--workspace` and `--examples` (there are no
/// examples; asking for them makes cargo resolve features with dev-dependencies, as a test
/// build does) the features, and so the artifacts, are the ones the tests built, where `-p
/// chronik-chaos` alone would rebuild part of the tree (tempfile enables rustix's `fs`).
/// Quiet: cargo's JSON messages are read, and one line is printed when something has to be
/// compiled; compiler diagnostics still reach the terminal (on stderr).
fn build_harness(bins: &[&str]) -> anyhow::Result<Vec<PathBuf>> {
    check_not_interrupted()?;
    let release = match std::env::var("CHRONIK_CHAOS_PROFILE").as_deref() {
        Err(_) | Ok("" | "dev" | "debug") => false,
        Ok("release") => true,
        Ok(other) => bail!("CHRONIK_CHAOS_PROFILE={other}: expected `dev` (the default) or `release`"),
    };
    let mut cargo = clean_command(Command::new("cargo"));
    cargo
        .current_dir(project_root())
        .args(["build", "--quiet", "--message-format=json-render-diagnostics", "--workspace", "--examples"])
        .args(release.then_some("--release"))
        .args(bins.iter().flat_map(|b| ["--bin", b]))
        .stdout(Stdio::piped());
    let mut child = spawn_child(&mut cargo).context("running cargo to build the harness")?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut found: Vec<Option<PathBuf>> = vec![None; bins.len()];
    let mut said = false;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's output")?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        if msg["fresh"] == false && !said {
            said = true;
            let profile = if release { "release profile, CHRONIK_CHAOS_PROFILE=release; " } else { "" };
            eprintln!("xtask: building the harness ({profile}first time: a few minutes)");
        }
        if let (Some(name), Some(exe)) = (msg["target"]["name"].as_str(), msg["executable"].as_str()) {
            if let Some(i) = bins.iter().position(|b| *b == name) {
                found[i] = Some(PathBuf::from(exe));
            }
        }
    }
    let status = wait_child(child).context("waiting for cargo")?;
    if !status.success() {
        check_not_interrupted()?;
        bail!("building the harness failed (cargo's messages are above)");
    }
    found
        .into_iter()
        .zip(bins)
        .map(|(path, name)| path.with_context(|| format!("cargo built no `{name}` executable")))
        .collect()
}

/// Builds the harness and runs it with `args`; see [`run_harness`].
fn run_chaos_binary(args: &[String], invoked_as: &str) -> anyhow::Result<u8> {
    let bin = build_harness(&[HARNESS])?.remove(0);
    run_harness(&bin, args, invoked_as, None)
}

/// Runs the harness `bin` with `args` in the project root and returns its exit code.
/// `invoked_as` (e.g. `cargo xtask chaos`) goes to `CHRONIK_CHAOS_INVOKED_AS`, so the hints the
/// binary prints name flags as that command takes them. With `sudo`, the harness runs as root
/// through sudo, and once it has ended (whatever its exit code, also after a signal) its output
/// directory is given back to xtask's user.
fn run_harness(bin: &Path, args: &[String], invoked_as: &str, sudo: Option<&Sudo>) -> anyhow::Result<u8> {
    let (program, argv) = harness_command(bin, args, sudo.is_some(), is_root());
    let mut cmd = clean_command(Command::new(&program));
    cmd.args(&argv).current_dir(project_root()).env("CHRONIK_CHAOS_INVOKED_AS", invoked_as);
    let via_sudo = program == "sudo";
    if via_sudo {
        eprintln!("xtask: --sudo: sudo -n --preserve-env -- {} {}", bin.display(), args.join(" "));
    }
    CHILD_VIA_SUDO.store(via_sudo, Ordering::SeqCst);
    let status = run_child(cmd);
    CHILD_VIA_SUDO.store(false, Ordering::SeqCst);
    if let Some(sudo) = sudo {
        sudo.give_back();
    }
    let status = status.with_context(|| format!("running {}", bin.display()))?;
    Ok(exit_code(status))
}

/// The program and arguments that run the harness `bin` with `args`: the binary itself, or,
/// with `sudo` when not already root, `sudo -n --preserve-env -- BIN ARGS...` (`-n`: fail at
/// once, with sudo's message, where a password would be asked for; `--preserve-env`: the
/// harness needs TOXIPROXY_BIN, CHRONIK_CHAOS_INVOKED_AS, STAND_IN_BUG, GITHUB_OUTPUT, ...).
fn harness_command(bin: &Path, args: &[String], sudo: bool, is_root: bool) -> (OsString, Vec<OsString>) {
    let args = args.iter().map(OsString::from);
    if sudo && !is_root {
        let sudo_args = ["-n", "--preserve-env", "--"].into_iter().map(OsString::from);
        (OsString::from("sudo"), sudo_args.chain([bin.as_os_str().to_owned()]).chain(args).collect())
    } else {
        (bin.as_os_str().to_owned(), args.collect())
    }
}

/// The exit code xtask passes on for a child's `status`: its own, or 2 when a signal ended it.
fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code.clamp(0, 255) as u8,
        (None, sig) => {
            eprintln!("xtask: the child process was ended by signal {}", sig.unwrap_or(0));
            2
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The harness as root through sudo (`cargo xtask chaos --sudo`), for what needs root
// (`--network netns`) on a machine where this user has passwordless sudo (GitHub's runners).
// Only the harness runs as root: cargo, the Chronik build and xtask itself stay this user's.

/// What to do when sudo cannot be used.
const SUDO_WHAT_TO_DO: &str = "run as root, or allow passwordless sudo, or drop --sudo and --network netns";

/// `--sudo` resolved: the harness runs as root through sudo, and `out` (its output directory) is
/// given back to xtask's user (`uid`:`gid`) after each run.
#[derive(Debug)]
struct Sudo {
    out: PathBuf,
    uid: u32,
    gid: u32,
}

impl Sudo {
    /// `--sudo` for a harness writing to `out`. As root: None, with a note (the harness already
    /// has every privilege). Otherwise checks that sudo runs, without a password, with the
    /// environment kept, and creates `out` as this user, so that no directory above it becomes
    /// root's.
    fn resolve(out: &Path) -> anyhow::Result<Option<Sudo>> {
        if is_root() {
            eprintln!("xtask: --sudo: already root, the harness runs as it is");
            return Ok(None);
        }
        check_not_interrupted()?;
        eprintln!("xtask: --sudo: sudo -n --preserve-env -- true (can the harness run as root?)");
        let probe = Command::new("sudo").args(["-n", "--preserve-env", "--", "true"]).stdin(Stdio::null()).output();
        match probe {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("--sudo: sudo is not installed; {SUDO_WHAT_TO_DO}")
            }
            Err(e) => bail!("--sudo: cannot start sudo ({e}); {SUDO_WHAT_TO_DO}"),
            Ok(o) if !o.status.success() => {
                let said = String::from_utf8_lossy(&o.stderr);
                let said = said.trim();
                let said = if said.is_empty() { "no message" } else { said };
                bail!(
                    "--sudo: sudo cannot run the harness as root here (`sudo -n --preserve-env -- true` said: \
                     {said}); {SUDO_WHAT_TO_DO}"
                )
            }
            Ok(_) => {}
        }
        std::fs::create_dir_all(out)
            .with_context(|| format!("--sudo: cannot create the output directory {}", out.display()))?;
        // SAFETY: getuid and getgid cannot fail and have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Ok(Some(Sudo { out: out.to_path_buf(), uid, gid }))
    }

    /// `sudo -n chown -R UID:GID OUT`: what the harness wrote as root becomes this user's again.
    /// A failure is a warning (the run's exit code stands), naming the command to run by hand.
    fn give_back(&self) {
        if !self.out.exists() {
            return;
        }
        let owner = format!("{}:{}", self.uid, self.gid);
        eprintln!("xtask: --sudo: sudo -n chown -R {owner} {}", self.out.display());
        let status =
            Command::new("sudo").args(["-n", "chown", "-R", &owner, "--"]).arg(&self.out).stdin(Stdio::null()).status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => eprintln!(
                "xtask: warning: giving {} back to {owner} failed ({s}); run `sudo chown -R {owner} {}`",
                self.out.display(),
                self.out.display()
            ),
            Err(e) => eprintln!("xtask: warning: giving {} back to {owner} failed ({e})", self.out.display()),
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

// ---------------------------------------------------------------------------------------------
// Signals. `cargo run` execs xtask, so xtask is the process the shell waits for: it must not
// die before the harness has torn down what it started.

/// The child SIGTERM (and a SIGINT sent to xtask alone) is forwarded to; 0 when none runs.
static CHILD: AtomicI32 = AtomicI32::new(0);
/// Set by SIGINT or SIGTERM: xtask starts nothing new afterwards.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// True while a child is being started: a signal to forward waits in PENDING meanwhile.
static SPAWNING: AtomicBool = AtomicBool::new(false);
/// A signal that arrived while SPAWNING, forwarded once the child's pid is known.
static PENDING: AtomicI32 = AtomicI32::new(0);
/// True while the child is `sudo` (`cargo xtask chaos --sudo`). Signals reach the harness the
/// same way: sudo relays those it receives to the command it runs, SIGINT too when, as here, a
/// process sent it (sudo(8), "Signal handling"). The invoking user may signal sudo since sudo
/// 1.9.4, which keeps the user's real uid until it runs the command; older versions make
/// themselves root in every uid first, and kill(2) then fails with EPERM, which is said.
static CHILD_VIA_SUDO: AtomicBool = AtomicBool::new(false);

/// SIGINT from the terminal went to the whole foreground process group, the running child
/// included: xtask only waits for the child. SIGTERM, and SIGINT from a process (`kill -INT`,
/// which reaches xtask alone), is forwarded to the child; with no child xtask ends as it would
/// without this handler.
extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler. The terminal's
    // SIGINT comes from the kernel, with no sending process.
    let from_terminal = sig == libc::SIGINT && unsafe { (*info).si_pid() } == 0;
    if from_terminal {
        return;
    }
    let child = CHILD.load(Ordering::SeqCst);
    if child > 0 {
        forward(child, sig);
    } else if SPAWNING.load(Ordering::SeqCst) {
        PENDING.store(sig, Ordering::SeqCst);
    } else {
        // SAFETY: signal and raise are async-signal-safe.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
}

/// Sends `sig` to `child`; says so when a child started through sudo could not be signalled
/// (see [`CHILD_VIA_SUDO`]). Async-signal-safe.
fn forward(child: libc::c_int, sig: libc::c_int) {
    const REFUSED: &[u8] = b"xtask: sudo refused the signal (sudo older than 1.9.4 cannot be signalled by \
        its user); the harness keeps running: stop it with `sudo kill`\n";
    // SAFETY: kill and write are async-signal-safe, and so is reading errno (no allocation);
    // REFUSED is a static buffer of that length.
    unsafe {
        let refused =
            libc::kill(child, sig) != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if refused && CHILD_VIA_SUDO.load(Ordering::SeqCst) {
            libc::write(libc::STDERR_FILENO, REFUSED.as_ptr().cast(), REFUSED.len());
        }
    }
}

/// Installs [`on_signal`] for SIGINT and SIGTERM, unless the signal is ignored (a background
/// job started by a non-interactive shell). Handlers do not survive exec: children start with
/// the default dispositions.
fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: zeroed sigaction structs are valid; the handler touches only atomics and
        // async-signal-safe functions.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 || old.sa_sigaction == libc::SIG_IGN {
                continue;
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// An error once SIGINT or SIGTERM has arrived, so that no further step starts.
fn check_not_interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Runs `cmd` to completion as the child signals are forwarded to.
fn run_child(mut cmd: Command) -> anyhow::Result<ExitStatus> {
    let child = spawn_child(&mut cmd)?;
    wait_child(child)
}

/// Starts `cmd` as the child signals are forwarded to (see [`on_signal`]).
fn spawn_child(cmd: &mut Command) -> anyhow::Result<Child> {
    check_not_interrupted()?;
    // A signal that arrives before the pid is recorded waits in PENDING (no signal mask: the
    // child would inherit it).
    SPAWNING.store(true, Ordering::SeqCst);
    let spawned = cmd.spawn();
    if let Ok(child) = &spawned {
        CHILD.store(child.id() as i32, Ordering::SeqCst);
    }
    SPAWNING.store(false, Ordering::SeqCst);
    let pending = PENDING.swap(0, Ordering::SeqCst);
    match &spawned {
        Ok(child) if pending != 0 => forward(child.id() as i32, pending),
        _ => {}
    }
    spawned.with_context(|| format!("starting {}", cmd.get_program().to_string_lossy()))
}

/// Waits for the child [`spawn_child`] started.
fn wait_child(mut child: Child) -> anyhow::Result<ExitStatus> {
    let status = child.wait();
    CHILD.store(0, Ordering::SeqCst);
    Ok(status?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_configuration_is_kept_and_what_cargo_set_for_xtask_is_not() {
        for kept in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_JOBS",
            "CARGO_PROFILE_RELEASE_LTO",
            "CARGO_INCREMENTAL",
            "CARGO_TERM_COLOR",
            "CARGO_REGISTRIES_CRATES_IO_PROTOCOL",
            "RUSTUP_TOOLCHAIN",
            "RUSTFLAGS",
            "PATH",
        ] {
            assert!(!set_by_cargo_for_a_crate(kept), "{kept} must reach nested cargo");
        }
        for dropped in [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_BIN_EXE_chronik-chaos",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "OUT_DIR",
        ] {
            assert!(set_by_cargo_for_a_crate(dropped), "{dropped} must not reach nested cargo");
        }
    }

    #[test]
    fn sudo_runs_only_the_harness_and_only_when_not_root() {
        fn check(sudo: bool, is_root: bool, expected: &[&str]) {
            let args = ["chaos".to_string(), "--out".into(), "/tmp/out dir".into(), "--network".into(), "netns".into()];
            let (program, argv) = harness_command(Path::new("/t/chronik-chaos"), &args, sudo, is_root);
            let mut got = vec![program.to_str().unwrap().to_string()];
            got.extend(argv.iter().map(|a| a.to_str().unwrap().to_string()));
            assert_eq!(got, expected, "sudo {sudo}, root {is_root}");
        }
        let plain = ["/t/chronik-chaos", "chaos", "--out", "/tmp/out dir", "--network", "netns"];
        check(
            true,
            false,
            &[
                "sudo",
                "-n",
                "--preserve-env",
                "--",
                "/t/chronik-chaos",
                "chaos",
                "--out",
                "/tmp/out dir",
                "--network",
                "netns",
            ],
        );
        check(true, true, &plain);
        check(false, false, &plain);
        check(false, true, &plain);
    }

    #[test]
    fn a_child_ended_by_a_signal_is_a_harness_error() {
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGKILL)), 2);
        assert_eq!(exit_code(ExitStatus::from_raw(1 << 8)), 1);
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
    }
}
