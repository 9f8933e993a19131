//! `chronik-chaos comment`: posts the Markdown report as the pull request's sticky comment, or
//! says why it did not and puts the report in the job summary instead.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::EXIT_OK;
use crate::github::comment::{self, CommentConfig, CommentOutcome, Mode, RetryPolicy, SkipReason};
use crate::github::{ContextInputs, GithubContext};
use crate::report::fit::{fit_markdown, STEP_SUMMARY_LIMIT};

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
    let outcome = comment::upsert(&ctx, &cfg, &report, args.failed, &|line| println!("{line}")).await?;
    match outcome {
        CommentOutcome::Created { id, url, deleted } => {
            println!("comment {id} created: {}{}", url.unwrap_or_default(), deleted_note(&deleted));
        }
        CommentOutcome::Updated { id, url, deleted } => {
            println!("comment {id} updated: {}{}", url.unwrap_or_default(), deleted_note(&deleted));
        }
        CommentOutcome::Skipped { reason } => {
            let summary = args.step_summary.as_deref().filter(|p| !p.is_empty()).map(Path::new);
            skipped(&reason, &report, summary)?
        }
    }
    Ok(ExitCode::from(EXIT_OK))
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
        append_step_summary(path, report)?;
        notice.push_str("; the report is in the job summary");
    }
    println!("::notice::{}", workflow_escape(&notice));
    Ok(())
}

/// Appends `report` to the step summary, cut so that the file stays within GitHub's limit.
fn append_step_summary(path: &Path, report: &str) -> anyhow::Result<()> {
    let used = std::fs::metadata(path).map(|m| m.len() as usize).unwrap_or(0);
    let room = STEP_SUMMARY_LIMIT.saturating_sub(used + 1);
    let text = fit_markdown(report, room);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the job summary {} (GITHUB_STEP_SUMMARY)", path.display()))?;
    let sep = if used > 0 { "\n" } else { "" };
    write!(file, "{sep}{text}")
        .with_context(|| format!("cannot write the job summary {} (GITHUB_STEP_SUMMARY)", path.display()))
}

/// Escapes a workflow command's message: `%`, `\r` and `\n` as `%25`, `%0D` and `%0A`.
pub fn workflow_escape(message: &str) -> String {
    message.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_messages_are_escaped() {
        let check = |input: &str, expected: &str| assert_eq!(workflow_escape(input), expected);
        check("plain", "plain");
        check("100% done", "100%25 done");
        check("a\r\nb\nc", "a%0D%0Ab%0Ac");
        check("%0A literal", "%250A literal");
    }

    #[test]
    fn step_summary_is_appended_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        std::fs::write(&path, "# Earlier step\n").unwrap();
        append_step_summary(&path, "# Report\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# Earlier step\n\n# Report\n");
        let huge = "row\n".repeat(STEP_SUMMARY_LIMIT / 2);
        append_step_summary(&path, &huge).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.len() <= STEP_SUMMARY_LIMIT, "{}", text.len());
        assert!(text.trim_end().ends_with("among the run's artifacts."), "cut with a notice");
    }
}
