//! `chronik-chaos comment`: posts the Markdown report as the pull request's sticky comment, or
//! says why it did not and puts the report in the job summary instead.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::EXIT_OK;
use crate::github::comment::{self, CommentConfig, CommentOutcome, Mode, RetryPolicy, SkipReason};
use crate::github::{ContextInputs, GithubContext};
use crate::report::actions::append_step_summary;
use crate::report::escape::workflow_data;

const AFTER_HELP: &str = "\
Which comment is ours: the one carrying the hidden marker <!-- chronik-chaos:report --> (or
<!-- chronik-chaos:report:ID --> with --marker-id) whose author is the token's identity (GET /user;
github-actions[bot] for an Actions GITHUB_TOKEN, which cannot call it; or --author). The newest is
edited in place (PATCH), older ones we own are deleted, and comments by anyone else are never
touched. Bodies are cut to GitHub's 65,536-character limit with a notice.

Not an error (exit 0, with a ::notice:: saying why): no token, no pull request, a fork pull request,
or a token GitHub refuses to let write (403 \"Resource not accessible by integration\", 404). Fork
pull requests get a read-only token on `pull_request` events; to comment on them, run this command
from a `workflow_run` workflow (see docs/github.md). When a comment is skipped that way and
GITHUB_STEP_SUMMARY is set, the report is appended to the job summary instead.

Rate limits (429, 403 secondary limits) and server errors are retried with exponential backoff,
honouring Retry-After and x-ratelimit-reset. Needs `permissions: pull-requests: write`.

Exit codes: 0 commented or skipped, 2 bad flags, unreadable report, or a GitHub error after retries.";

/// Posts the Markdown report as the pull request's sticky comment (created once, then edited).
#[derive(Debug, clap::Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct CommentArgs {
    /// The Markdown report to post.
    #[arg(long, value_name = "FILE")]
    pub report: PathBuf,
    /// When to comment.
    #[arg(long, value_enum, default_value_t = Mode::Always)]
    pub mode: Mode,
    /// The run failed: with --mode on-failure, this is what makes it comment.
    #[arg(long)]
    pub failed: bool,
    /// GitHub token; needs `pull-requests: write`. Without one the comment is skipped.
    #[arg(long, env = "GITHUB_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Repository, owner/name (default: the event's repository).
    #[arg(long, env = "GITHUB_REPOSITORY", value_name = "OWNER/NAME")]
    pub repo: Option<String>,
    /// Pull request number (default: from the event file: pull_request.number, or issue.number
    /// for a comment on a pull request).
    #[arg(long, value_name = "NUMBER")]
    pub pr: Option<u64>,
    /// GitHub API base URL (GitHub Enterprise: https://HOST/api/v3).
    #[arg(long, env = "GITHUB_API_URL", value_name = "URL", default_value = crate::github::DEFAULT_API_URL)]
    pub api_url: String,
    /// The event payload (JSON) that triggered the workflow: the pull request and whether it
    /// comes from a fork.
    // A string, not a path: Actions may set the variable empty, which clap refuses for a path.
    #[arg(long, env = "GITHUB_EVENT_PATH", value_name = "FILE")]
    pub event_path: Option<String>,
    /// The event's name; on `pull_request_target` a fork's pull request gets a token that can write.
    #[arg(long, env = "GITHUB_EVENT_NAME", value_name = "NAME")]
    pub event_name: Option<String>,
    /// Own a separate comment per ID (e.g. one per job): marker <!-- chronik-chaos:report:ID -->.
    #[arg(long, value_name = "ID")]
    pub marker_id: Option<String>,
    /// The login whose comments are ours (default: GET /user, else github-actions[bot]); set it
    /// for a GitHub App's token, e.g. my-app[bot].
    #[arg(long, value_name = "LOGIN")]
    pub author: Option<String>,
    /// Where to append the report when the comment is skipped (the job summary).
    // A string for the same reason as --event-path.
    #[arg(long, env = "GITHUB_STEP_SUMMARY", value_name = "FILE")]
    pub step_summary: Option<String>,
    /// Attempts per request before giving up on rate limits and server errors.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub attempts: u32,
    /// The longest wait between attempts when GitHub names none (e.g. 60s).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub max_backoff: Duration,
}

pub async fn run(args: CommentArgs) -> anyhow::Result<ExitCode> {
    let report = std::fs::read_to_string(&args.report)
        .with_context(|| format!("cannot read the report {} (--report)", args.report.display()))?;
    let ctx = GithubContext::resolve(&ContextInputs {
        token: args.token.clone(),
        repository: args.repo.clone(),
        pr: args.pr,
        api_url: Some(args.api_url.clone()),
        event_path: args.event_path.as_deref().filter(|p| !p.is_empty()).map(PathBuf::from),
        event_name: args.event_name.clone(),
    })?;
    let defaults = RetryPolicy::default();
    let cfg = CommentConfig {
        mode: args.mode,
        marker_id: args.marker_id.clone(),
        author: args.author.clone(),
        retry: RetryPolicy {
            max_attempts: args.attempts.max(1),
            max_backoff: args.max_backoff,
            initial_backoff: defaults.initial_backoff.min(args.max_backoff),
            rate_limit_floor: defaults.rate_limit_floor.min(args.max_backoff),
            ..defaults
        },
    };
    let summary = args.step_summary.as_deref().filter(|p| !p.is_empty()).map(Path::new);
    post(&ctx, &cfg, &report, args.failed, summary).await?;
    Ok(ExitCode::from(EXIT_OK))
}

/// Upserts the comment and prints what happened; on a skip that leaves the report unseen,
/// appends it to `step_summary` (when given) and prints a `::notice::`. Shared with `chaos`.
pub(super) async fn post(
    ctx: &GithubContext,
    cfg: &CommentConfig,
    report: &str,
    failed: bool,
    step_summary: Option<&Path>,
) -> anyhow::Result<()> {
    match comment::upsert(ctx, cfg, report, failed, &|line| println!("{line}")).await? {
        CommentOutcome::Created { id, url, deleted } => {
            println!("comment {id} created: {}{}", url.unwrap_or_default(), deleted_note(&deleted));
        }
        CommentOutcome::Updated { id, url, deleted } => {
            println!("comment {id} updated: {}{}", url.unwrap_or_default(), deleted_note(&deleted));
        }
        CommentOutcome::Skipped { reason } => skipped(&reason, report, step_summary)?,
    }
    Ok(())
}

fn deleted_note(deleted: &[u64]) -> String {
    if deleted.is_empty() {
        String::new()
    } else {
        format!(" (deleted {} older duplicate(s): {deleted:?})", deleted.len())
    }
}

/// Says why nothing was posted; when the report reached no pull request, appends it to the job
/// summary so it still reaches people.
fn skipped(reason: &SkipReason, report: &str, step_summary: Option<&Path>) -> anyhow::Result<()> {
    if !reason.needs_fallback() {
        println!("{reason}");
        return Ok(());
    }
    let mut notice = reason.to_string();
    if let Some(path) = step_summary {
        append_step_summary(path, report)
            .with_context(|| format!("cannot write the job summary {} (GITHUB_STEP_SUMMARY)", path.display()))?;
        notice.push_str("; the report is in the job summary");
    }
    println!("::notice::{}", workflow_data(&notice));
    Ok(())
}
