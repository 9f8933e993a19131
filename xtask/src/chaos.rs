//! `cargo xtask chaos`: checks the request, builds (or clones and builds) Chronik, then hands
//! off to `chronik-chaos chaos`, which runs the suite and writes every report.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use xshell::{cmd, Shell};

use crate::chronik::BuildArgs;

/// The public Chronik repository and the ref `--clone` checks out (the one this harness was
/// last run against; see docs/example-report.md).
pub const CHRONIK_REPO: &str = "https://github.com/lspecian/chronik-stream";
pub const CHRONIK_PINNED_REF: &str = "v2.10.4";

/// Flags of `cargo xtask chaos` (its help text is on `Task::Chaos` in main.rs).
#[derive(Debug, Args)]
pub struct Chaos {
    #[command(flatten)]
    build: BuildArgs,
    /// With no --chronik-dir/--chronik-bin: clone the public Chronik repository at --chronik-ref
    /// into target/chronik-stream (needs network) and build it. A clone already there is used
    /// only when it is at --chronik-ref. CHRONIK_CHAOS_CLONE_DIR names another directory.
    #[arg(long, conflicts_with_all = ["chronik_dir", "chronik_bin"])]
    clone: bool,
    /// Run against the stand-in broker (`chronik-stand-in-node`, a small replicating
    /// Kafka-protocol broker built with this project, not Chronik): the whole product in
    /// seconds, no Chronik build. For a first try and for developing scenarios.
    #[arg(long, conflicts_with_all = ["chronik_dir", "chronik_bin", "clone"])]
    stand_in: bool,
    /// The ref --clone checks out.
    #[arg(long, default_value = CHRONIK_PINNED_REF, value_name = "REF")]
    chronik_ref: String,
    /// Run only this scenario (repeatable; default: every built-in and --scenarios-file scenario).
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    /// Add the scenarios of this TOML file (repeatable; see docs/scenarios.md).
    #[arg(long = "scenarios-file", value_name = "FILE")]
    scenario_files: Vec<PathBuf>,
    /// Seed for every random choice; printed by every run so it can be repeated.
    #[arg(long)]
    seed: Option<u64>,
    /// Output directory [default: target/chronik-chaos/run].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// A real toxiproxy-server to use (else $TOXIPROXY_BIN, PATH, or the embedded server).
    #[arg(long, value_name = "PATH")]
    toxiproxy_bin: Option<PathBuf>,
    /// An earlier results.json to compare against (deltas and regressions in the report).
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// The pull request's sticky comment: auto (always inside a GitHub Actions pull-request
    /// workflow, never elsewhere), always, on-failure, never.
    #[arg(long, default_value = "auto", value_name = "MODE")]
    comment: String,
    /// List the scenarios and exit (no Chronik needed).
    #[arg(long)]
    list: bool,
    /// Run the harness as root through `sudo -n --preserve-env`, for what needs root (`--
    /// --network netns`) as a user with passwordless sudo, such as on GitHub's runners. Only the
    /// harness runs as root (the request check and the run), never cargo or the Chronik build;
    /// after each run the output directory is given back to this user (`sudo chown -R`). sudo
    /// sets PATH to its secure_path: name a real Toxiproxy with --toxiproxy-bin or TOXIPROXY_BIN.
    /// As root, a no-op.
    #[arg(long)]
    sudo: bool,
    /// Further flags for `chronik-chaos chaos`, after `--` (`cargo xtask chaos -- --help` lists
    /// them and does nothing else).
    #[arg(last = true, value_name = "ARGS")]
    extra: Vec<String>,
}

/// How the user invoked this task; the binary names its flags accordingly.
const INVOKED_AS: &str = "cargo xtask chaos";

impl Chaos {
    pub fn run(self, sh: &Shell) -> anyhow::Result<u8> {
        if self.extra.iter().any(|a| matches!(a.as_str(), "-h" | "--help" | "help")) {
            // The flags that go after `--`: the binary's own help, and nothing else is done.
            return crate::run_chaos_binary(&["chaos".into(), "--help".into()], INVOKED_AS);
        }
        let mut common: Vec<String> = vec!["chaos".into()];
        for f in &self.scenario_files {
            common.extend(["--scenarios-file".into(), crate::absolute(f).display().to_string()]);
        }
        if self.list {
            common.push("--list".into());
            return crate::run_chaos_binary(&common, INVOKED_AS);
        }
        // Seconds: xtask's own flags, then (in the binary) everything else about the request,
        // before a long build.
        if !self.stand_in && !self.clone && self.build.chronik_dir.is_none() && self.build.chronik_bin.is_none() {
            bail!(
                "no Chronik given. Either\n  \
                 --chronik-dir DIR   a checkout to build (e.g. `git clone {CHRONIK_REPO} ../chronik-stream`), or\n  \
                 --chronik-bin PATH  a chronik-server binary already built, or\n  \
                 --clone             clone {CHRONIK_REPO} at {CHRONIK_PINNED_REF} into target/ (needs network), or\n  \
                 --stand-in          the stand-in broker built with this project (not Chronik), in seconds"
            );
        }
        let clone_dir = clone_dir();
        let reuse_clone = self.clone && existing_clone(sh, &clone_dir, &self.chronik_ref)?;
        for s in &self.scenarios {
            common.extend(["--scenario".into(), s.clone()]);
        }
        if let Some(seed) = self.seed {
            common.extend(["--seed".into(), seed.to_string()]);
        }
        let out = self
            .out
            .as_ref()
            .map(|o| crate::absolute(o))
            .unwrap_or_else(|| crate::target_dir().join("chronik-chaos/run"));
        common.extend(["--out".into(), out.display().to_string()]);
        let sudo = if self.sudo { crate::Sudo::resolve(&out)? } else { None };
        if let Some(t) = &self.toxiproxy_bin {
            common.extend(["--toxiproxy-bin".into(), crate::absolute(t).display().to_string()]);
        }
        if let Some(b) = &self.baseline {
            common.extend(["--baseline".into(), crate::absolute(b).display().to_string()]);
        }
        common.extend(["--comment".into(), self.comment.clone()]);
        common.extend(self.extra.iter().cloned());

        // One build of the harness (and the stand-in node, built with it) for the check and the run.
        let bins: &[&str] = if self.stand_in { &[crate::HARNESS, crate::STAND_IN] } else { &[crate::HARNESS] };
        let built = crate::build_harness(bins)?;
        let harness = &built[0];
        let mut check = common.clone();
        check.push("--dry-run".into());
        if crate::run_harness(harness, &check, INVOKED_AS, sudo.as_ref())? != 0 {
            return Ok(2);
        }

        let chronik = if self.stand_in {
            eprintln!("xtask: --stand-in: chronik-stand-in-node (not Chronik; reports name it)");
            built[1].clone()
        } else if self.clone {
            if !reuse_clone {
                clone(sh, &clone_dir, &self.chronik_ref)?;
            }
            crate::chronik::build(sh, &clone_dir, self.build.profile, "the --clone checkout")?
        } else {
            self.build.resolve(sh)?
        };
        let mut args = common;
        args.extend(["--chronik-bin".into(), chronik.display().to_string()]);
        crate::run_harness(harness, &args, INVOKED_AS, sudo.as_ref())
    }
}

/// Where `--clone` puts Chronik: target/chronik-stream, or `$CHRONIK_CHAOS_CLONE_DIR`.
fn clone_dir() -> PathBuf {
    match std::env::var_os("CHRONIK_CHAOS_CLONE_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => crate::absolute(Path::new(&dir)),
        None => crate::target_dir().join("chronik-stream"),
    }
}

/// Whether a clone is already at `dir` (true) or it is to be made (false). A clone at another
/// commit than `git_ref` is refused, naming both, before anything is built.
fn existing_clone(sh: &Shell, dir: &Path, git_ref: &str) -> anyhow::Result<bool> {
    let empty = dir.read_dir().map(|mut entries| entries.next().is_none()).unwrap_or(true);
    if empty {
        return Ok(false);
    }
    let what_to_do = format!(
        "delete {dir} to clone {git_ref} afresh, or pass --chronik-dir {dir} instead of --clone to use the \
         checkout as it is",
        dir = dir.display()
    );
    if !dir.join(".git").exists() {
        bail!("{} (where --clone puts Chronik) exists but is not a git clone; {what_to_do}", dir.display());
    }
    let _dir = sh.push_dir(dir);
    // Never the enclosing repository (target/ lies inside this project's checkout).
    let parent = dir.parent().unwrap_or(dir).as_os_str().to_owned();
    let _ceiling = sh.push_env("GIT_CEILING_DIRECTORIES", parent);
    let git = |args: &[&str]| cmd!(sh, "git {args...}").quiet().ignore_stderr().read().ok();
    let head = git(&["rev-parse", "--verify", "HEAD"])
        .with_context(|| format!("cannot read the HEAD commit of {} with git; {what_to_do}", dir.display()))?;
    let head_tag = git(&["describe", "--tags", "--exact-match", "HEAD"]);
    let head_named = match &head_tag {
        Some(tag) => format!("{} ({tag})", short(&head)),
        None => short(&head).to_string(),
    };
    let wanted = git(&["rev-parse", "--verify", "--quiet", &format!("{git_ref}^{{commit}}")]);
    match wanted {
        Some(w) if w == head => {}
        // A shallow clone may lack the tag object yet sit exactly on it.
        None if head_tag.as_deref() == Some(git_ref) => {}
        Some(w) => bail!(
            "{} is a clone at {head_named}, not at --chronik-ref {git_ref} ({}); {what_to_do}",
            dir.display(),
            short(&w)
        ),
        None => bail!(
            "{} is a clone at {head_named}, which does not know --chronik-ref {git_ref} (nothing is \
             fetched to check); {what_to_do}",
            dir.display()
        ),
    }
    eprintln!("xtask: using the existing clone {} at {git_ref} ({})", dir.display(), short(&head));
    Ok(true)
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

fn clone(sh: &Shell, dir: &Path, git_ref: &str) -> anyhow::Result<()> {
    crate::check_not_interrupted()?;
    eprintln!("xtask: cloning {CHRONIK_REPO} at {git_ref} into {}", dir.display());
    cmd!(sh, "git clone --depth 1 --branch {git_ref} {CHRONIK_REPO} {dir}").run().map_err(|e| {
        anyhow::anyhow!(
            "cloning {CHRONIK_REPO} failed ({e}); without network, clone it elsewhere and pass --chronik-dir DIR"
        )
    })?;
    Ok(())
}
