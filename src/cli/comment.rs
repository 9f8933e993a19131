//! `chronik-chaos comment`: posts the Markdown report as the pull request's sticky comment, or
//! says why it did not and puts the report in the job summary instead (or always, with
//! `--summary always`, as the composite action's publish step asks).

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
<!-- chronik-chaos:report:ID --> with --comment-id, one per job of a matrix) whose author is
--comment-author, else the token's identity: GET /user for a personal token; GraphQL's viewer for
an installation token (an Actions GITHUB_TOKEN or a GitHub App's), which cannot call /user; else
the bot (type Bot, login ending in [bot]) whose comment with the marker is newest, never a person.
The newest is edited in place (PATCH), older ones we own are deleted, and comments by anyone else
are never touched. #123, owner/repo#123 and GH-123 outside code are kept from linking (an invisible
word joiner after # or GH-). The marker and the report together stay within GitHub's 65,536-character
limit; a longer report is cut at a line boundary with a notice.

Not an error (exit 0, with a ::notice:: saying why): no token, no pull request, a fork pull request,
or a token GitHub refuses to let write (403 \"Resource not accessible by integration\", 404). Fork
pull requests get a read-only token on `pull_request` events; to comment on them, run this command
from a `workflow_run` workflow (see docs/github.md). When a comment is skipped that way and
GITHUB_STEP_SUMMARY is set, the report is appended to the job summary instead.

Rate limits (429, 403 secondary limits) and server errors are retried with exponential backoff,
honouring Retry-After and x-ratelimit-reset. Needs `permissions: pull-requests: write`.

Exit codes: 0 commented or skipped, 2 bad flags, unreadable report, or a GitHub error after retries.";

/// When the report goes to the job summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Summary {
    /// When the comment was skipped for a reason that leaves the report unseen (no token, not
    /// writable, fork pull request), not for `--mode never` or a passing `on-failure` run.
    OnSkip,
    /// Every time, before the comment is attempted.
    Always,
    /// Never.
    Never,
}

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
    /// Own a separate comment per ID (e.g. one per job of a matrix): marker
    /// <!-- chronik-chaos:report:ID -->; 1 to 64 ASCII letters, digits, `.`, `_`, `-`.
    #[arg(long = "comment-id", visible_alias = "marker-id", value_name = "ID")]
    pub comment_id: Option<String>,
    /// The login whose comments are ours, e.g. my-app[bot] (default: the token's identity from
    /// GET /user or GraphQL, else the bot whose comment with the marker is newest).
    #[arg(long = "comment-author", visible_alias = "author", value_name = "LOGIN")]
    pub author: Option<String>,
    /// Where to append the report as the job summary.
    // A string for the same reason as --event-path.
    #[arg(long, env = "GITHUB_STEP_SUMMARY", value_name = "FILE")]
    pub step_summary: Option<String>,
    /// When to append the report to --step-summary: on-skip (when no comment carries it),
    /// always, never.
    #[arg(long, value_enum, default_value_t = Summary::OnSkip)]
    pub summary: Summary,
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
        comment_id: args.comment_id.clone(),
        author: args.author.clone(),
        retry: RetryPolicy {
            max_attempts: args.attempts.max(1),
            max_backoff: args.max_backoff,
            initial_backoff: defaults.initial_backoff.min(args.max_backoff),
            rate_limit_floor: defaults.rate_limit_floor.min(args.max_backoff),
            ..defaults
        },
    };
    let step_summary = args.step_summary.as_deref().filter(|p| !p.is_empty()).map(Path::new);
    let step_summary = if args.summary == Summary::Never { None } else { step_summary };
    post_with_summary(&ctx, &cfg, &report, args.failed, step_summary, args.summary).await?;
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
    post_with_summary(ctx, cfg, report, failed, step_summary, Summary::OnSkip).await
}

/// [`post`], with `summary` saying when the report goes to `step_summary`. With
/// [`Summary::Always`] it is written first, so a GitHub error afterwards still leaves it.
async fn post_with_summary(
    ctx: &GithubContext,
    cfg: &CommentConfig,
    report: &str,
    failed: bool,
    step_summary: Option<&Path>,
    summary: Summary,
) -> anyhow::Result<()> {
    let summary_written = match (summary, step_summary) {
        (Summary::Always, Some(path)) => {
            write_summary(path, report)?;
            true
        }
        _ => false,
    };
    match comment::upsert(ctx, cfg, report, failed, &|line| println!("{line}")).await? {
        CommentOutcome::Created { id, url, deleted } => {
            println!("comment {id} created: {}{}", url.unwrap_or_default(), deleted_note(&deleted));
        }
        CommentOutcome::Updated { id, url, deleted } => {
            println!("comment {id} updated: {}{}", url.unwrap_or_default(), deleted_note(&deleted));
        }
        CommentOutcome::Skipped { reason } => {
            let fallback = if summary_written || summary == Summary::Never { None } else { step_summary };
            skipped(&reason, report, fallback, summary_written)?;
        }
    }
    Ok(())
}

/// Appends the report, its issue references neutralised as in the comment, to the job summary.
fn write_summary(path: &Path, report: &str) -> anyhow::Result<()> {
    let n = append_step_summary(path, &comment::neutralise_references(report))
        .with_context(|| format!("cannot write the job summary {} (GITHUB_STEP_SUMMARY)", path.display()))?;
    println!("job summary: {n} bytes appended to {}", path.display());
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
/// summary (unless `in_summary`: it is there already) so it still reaches people.
fn skipped(reason: &SkipReason, report: &str, step_summary: Option<&Path>, in_summary: bool) -> anyhow::Result<()> {
    if !reason.needs_fallback() {
        println!("{reason}");
        return Ok(());
    }
    let mut notice = reason.to_string();
    if let Some(path) = step_summary {
        write_summary(path, report)?;
    }
    if in_summary || step_summary.is_some() {
        notice.push_str("; the report is in the job summary");
    }
    println!("::notice::{}", workflow_data(&notice));
    Ok(())
}
