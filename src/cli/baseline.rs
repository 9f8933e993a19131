//! `chronik-chaos baseline`: finds the pull request's base-branch results for `--baseline` (the
//! composite action's lookup step), prints one line saying what it found or why there is no
//! comparison, and gives the file's path as the step output `baseline`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::EXIT_OK;
use crate::github::baseline::{self, Outcome, DEFAULT_MAX_RUNS};
use crate::github::{Repo, Token};
use crate::report::actions::append_outputs;

const AFTER_HELP: &str = "\
Looks at the newest successful runs of the workflow on the base branch (GET
/repos/OWNER/NAME/actions/workflows/WORKFLOW/runs?branch=BASE&status=success), takes the first that
still has the artifact named --artifact (GET .../actions/runs/RUN/artifacts?name=ARTIFACT), downloads
its zip (GET .../actions/artifacts/ID/zip, which redirects to storage that gets no token) and writes
the results.json at its root to --dir. Needs `permissions: actions: read`.

Never fails for a comparison it cannot make: not a pull request, no token, no such run or artifact,
an expired artifact, GitHub refusing or failing are each one line and exit 0; the report then has no
deltas. Exit codes: 0 found or not found, 2 bad flags or --dir cannot be written.";

/// Finds the base branch's results.json for the report's comparison (GitHub Actions).
#[derive(Debug, clap::Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct BaselineArgs {
    /// The artifact this job uploads (the same name on the base branch's run).
    #[arg(long, value_name = "NAME")]
    pub artifact: String,
    /// Where to write the base branch's results.json.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The base branch (on a pull request, GitHub sets GITHUB_BASE_REF). Without one there is no
    /// comparison.
    #[arg(long, env = "GITHUB_BASE_REF", value_name = "BRANCH")]
    pub base: Option<String>,
    /// The workflow whose runs to search: its file name (chaos.yml) or id (default: this run's
    /// workflow, from GITHUB_WORKFLOW_REF).
    #[arg(long, value_name = "FILE")]
    pub workflow: Option<String>,
    /// This run's workflow reference, `OWNER/NAME/.github/workflows/FILE@REF`.
    #[arg(long, env = "GITHUB_WORKFLOW_REF", value_name = "REF", hide = true)]
    pub workflow_ref: Option<String>,
    /// GitHub token; needs `actions: read`.
    #[arg(long, env = "GITHUB_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Repository, owner/name.
    #[arg(long, env = "GITHUB_REPOSITORY", value_name = "OWNER/NAME")]
    pub repo: Option<String>,
    /// GitHub API base URL (GitHub Enterprise: https://HOST/api/v3).
    #[arg(long, env = "GITHUB_API_URL", value_name = "URL", default_value = crate::github::DEFAULT_API_URL)]
    pub api_url: String,
    /// How many of the base branch's newest successful runs to look through for the artifact.
    #[arg(long, default_value_t = DEFAULT_MAX_RUNS, value_parser = clap::value_parser!(u8).range(1..=100), value_name = "N")]
    pub max_runs: u8,
    /// Where to write the step output `baseline` (the path of results.json).
    // A string: Actions may set the variable empty, which clap refuses for a path.
    #[arg(long, env = "GITHUB_OUTPUT", value_name = "FILE")]
    pub github_output: Option<String>,
}

pub async fn run(args: BaselineArgs) -> anyhow::Result<ExitCode> {
    let say = |line: &str| println!("chronik-chaos baseline: {line}");
    let nonempty = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    let Some(base) = nonempty(&args.base) else {
        say("not a pull request (no GITHUB_BASE_REF and no --base): no base branch to compare with");
        return Ok(ExitCode::from(EXIT_OK));
    };
    let workflow =
        nonempty(&args.workflow).or_else(|| nonempty(&args.workflow_ref).and_then(|r| baseline::workflow_file(&r)));
    let Some(workflow) = workflow else {
        anyhow::bail!("no workflow to search: pass --workflow FILE (e.g. chaos.yml) or set GITHUB_WORKFLOW_REF");
    };
    let Some(repo) = nonempty(&args.repo) else {
        anyhow::bail!("no repository: pass --repo OWNER/NAME or set GITHUB_REPOSITORY");
    };
    let repo: Repo = repo.parse()?;
    let request = baseline::Request {
        api_url: args.api_url.trim_end_matches('/').to_string(),
        token: nonempty(&args.token).map(Token::new),
        repo,
        base: base.clone(),
        workflow: workflow.clone(),
        artifact: args.artifact.clone(),
        dir: args.dir.clone(),
        max_runs: args.max_runs,
    };
    match baseline::fetch(&request, &|l| say(l)).await? {
        Outcome::Found { run_id, run_url, path } => {
            let at = run_url.map(|u| format!(" ({u})")).unwrap_or_default();
            say(&format!(
                "comparing with run {run_id}{at} of {workflow} on {base}: artifact {}, {}",
                args.artifact,
                path.display()
            ));
            if let Some(out) = nonempty(&args.github_output) {
                append_outputs(out.as_ref(), &[("baseline", path.display().to_string())])
                    .with_context(|| format!("cannot write the step output to {out} (GITHUB_OUTPUT)"))?;
            }
        }
        Outcome::NoComparison(why) => say(&format!("{why}: no comparison with {base}")),
    }
    Ok(ExitCode::from(EXIT_OK))
}
