//! The sticky pull-request comment: one comment per marker (one per comment id, so that each job
//! of a matrix keeps its own), owned by the token's identity, created or updated in place (older
//! duplicates it owns deleted), retried on rate limits and server errors, and skipped (never an
//! error) where the token cannot write. The body is the marker line and the report with issue
//! references neutralised, fitted so that the whole stays within GitHub's limit.
//!
//! Requests go through octocrab's raw `_get`/`_post`/`_patch`/`_delete`, which return the
//! `http::Response`: octocrab adds the token and the base URI, and this module sees every
//! status and header it needs to decide on retries. octocrab's `update_comment` is not used: it
//! sends POST where the REST API documents PATCH `/repos/{o}/{r}/issues/comments/{id}`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::HeaderMap;
use hyper::{Method, StatusCode};
use octocrab::Octocrab;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{error_chain, GithubContext, Repo, Token};
use crate::report::fit::{fit_markdown, GITHUB_COMMENT_LIMIT};

/// The login that owns comments made with an Actions `GITHUB_TOKEN`.
pub const ACTIONS_BOT: &str = "github-actions[bot]";

/// The longest comment id (`--comment-id`), so that the marker line has a bound.
pub const MAX_COMMENT_ID_LEN: usize = 64;
const MARKER_OPEN: &str = "<!-- chronik-chaos:report";
const MARKER_CLOSE: &str = " -->";
/// The most the comment adds around the report: the marker line with the longest comment id
/// (`<!-- chronik-chaos:report:ID -->` and a newline). A report of at most
/// `GITHUB_COMMENT_LIMIT - MAX_ENVELOPE` bytes (and with no issue reference to neutralise) is
/// posted whole under any marker; the renderer's `report::fit::REPORT_BUDGET` stays below that,
/// so a report that is too long drops a level of detail instead of being cut here.
pub const MAX_ENVELOPE: usize = MARKER_OPEN.len() + 1 + MAX_COMMENT_ID_LEN + MARKER_CLOSE.len() + 1;
// The renderer chooses the report's level of detail against its budget: it must leave room.
const _: () = assert!(crate::report::fit::REPORT_BUDGET + MAX_ENVELOPE <= GITHUB_COMMENT_LIMIT);
/// Inserted after `#` or `GH-` before digits so that GitHub does not link an issue (the same
/// character `report::escape::md` puts after `@`).
const WORD_JOINER: char = '\u{2060}';

/// When to comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Comment on every run.
    Always,
    /// Comment when the run failed; a comment left by an earlier failing run is still updated
    /// when the run passes, so it never shows a stale failure.
    OnFailure,
    /// Never comment.
    Never,
}

/// Everything about the comment besides where it goes, resolved once.
#[derive(Debug, Clone)]
pub struct CommentConfig {
    pub mode: Mode,
    /// The comment id: the suffix of the hidden marker, so that several jobs (a matrix, two
    /// workflows) each own one comment. `None`: the plain marker `<!-- chronik-chaos:report -->`.
    pub comment_id: Option<String>,
    /// The login whose comments are ours. `None`: the token's identity (`GET /user`, else
    /// GraphQL's `viewer`), else the bot whose marked comment is newest (never a person).
    pub author: Option<String>,
    pub retry: RetryPolicy,
}

impl Default for CommentConfig {
    fn default() -> Self {
        CommentConfig { mode: Mode::Always, comment_id: None, author: None, retry: RetryPolicy::default() }
    }
}

/// How requests are retried on 429, 5xx, 403 rate limits and lost connections.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// The first computed wait; doubled after each attempt.
    pub initial_backoff: Duration,
    /// The longest computed wait.
    pub max_backoff: Duration,
    /// The least wait after a rate limit that names no time (GitHub asks for at least a minute).
    pub rate_limit_floor: Duration,
    /// The longest wait honoured from `Retry-After` or `x-ratelimit-reset`; longer is an error.
    pub max_server_wait: Duration,
    /// How long one request may take.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
            rate_limit_floor: Duration::from_secs(60),
            max_server_wait: Duration::from_secs(600),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The computed wait before attempt `attempt + 1`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// What [`upsert`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommentOutcome {
    /// A new comment; `deleted` lists duplicates removed afterwards.
    Created { id: u64, url: Option<String>, deleted: Vec<u64> },
    /// The newest comment we own was edited; `deleted` lists the older ones removed.
    Updated { id: u64, url: Option<String>, deleted: Vec<u64> },
    /// Nothing was written; the reason says why and what to do.
    Skipped { reason: SkipReason },
}

/// Why no comment was written. Not an error: the run's exit code does not change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// `--mode never`.
    Disabled,
    /// `--mode on-failure`, the run passed, and there is no earlier comment to update.
    PassedWithoutComment,
    /// No token was given.
    NoToken,
    /// The run is not for a pull request.
    NotAPullRequest,
    /// A fork pull request: its token is read-only.
    ForkPullRequest,
    /// GitHub refused (403 that is not a rate limit, or 404): the token cannot read or write
    /// this pull request's comments.
    Refused { what: String, status: u16, message: String },
}

impl SkipReason {
    /// The report reached no pull request although the run did not ask for that: it should go
    /// to the job summary instead.
    pub fn needs_fallback(&self) -> bool {
        !matches!(self, SkipReason::Disabled | SkipReason::PassedWithoutComment)
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Disabled => f.write_str("no pull-request comment: --mode never"),
            SkipReason::PassedWithoutComment => f.write_str(
                "no pull-request comment: the run passed and --mode on-failure comments only on failure (no earlier comment to update)",
            ),
            SkipReason::NoToken => f.write_str(
                "no pull-request comment: no GitHub token; set GITHUB_TOKEN (e.g. `GITHUB_TOKEN: ${{ github.token }}` in the step's env) or pass --token",
            ),
            SkipReason::NotAPullRequest => f.write_str(
                "no pull-request comment: this run is not for a pull request (no pull request in GITHUB_EVENT_PATH and no --pr)",
            ),
            SkipReason::ForkPullRequest => f.write_str(
                "no pull-request comment: this pull request comes from a fork, and GitHub gives fork pull requests a read-only token; \
                 to comment on them, use the workflow_run recipe in docs/github.md",
            ),
            SkipReason::Refused { what, status, message } => write!(
                f,
                "no pull-request comment: GitHub refused to {what} ({status} {message}); the token cannot write here: grant \
                 `permissions: pull-requests: write` to the job, or for a fork pull request use the workflow_run recipe in docs/github.md"
            ),
        }
    }
}

/// The comment could not be written for a reason that needs fixing (not a skip).
#[derive(Debug, thiserror::Error)]
pub enum CommentError {
    #[error("no repository to comment in: set GITHUB_REPOSITORY or pass --repo owner/name")]
    NoRepository,
    #[error("comment id `{0}` (--comment-id) must be 1 to 64 ASCII letters, digits, `.`, `_` or `-`")]
    CommentId(String),
    #[error("cannot set up the GitHub client for {api_url}: {message}")]
    Client { api_url: String, message: String },
    #[error("{what}: GitHub rejected the token ({status} {message}); check GITHUB_TOKEN or --token")]
    BadCredentials { what: String, status: u16, message: String },
    #[error("{what}: GitHub answered {status} after {attempts} attempt(s): {message}")]
    Status { what: String, status: u16, attempts: u32, message: String },
    #[error("{what}: no answer from GitHub after {attempts} attempt(s): {message}")]
    Transport { what: String, attempts: u32, message: String },
    #[error(
        "{what}: GitHub asks to wait {}, longer than the {} this command waits; run it again later",
        humantime::format_duration(*wait),
        humantime::format_duration(*limit)
    )]
    WaitTooLong { what: String, wait: Duration, limit: Duration },
    #[error("{what}: GitHub's answer is not what the REST API documents: {message}")]
    Response { what: String, message: String },
}

/// Whether `id` can be a comment id: 1 to [`MAX_COMMENT_ID_LEN`] ASCII letters, digits, `.`, `_`, `-`.
pub fn valid_comment_id(id: &str) -> bool {
    (1..=MAX_COMMENT_ID_LEN).contains(&id.len())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The hidden marker that identifies our comment, `<!-- chronik-chaos:report -->` or, with a
/// comment id, `<!-- chronik-chaos:report:ID -->`.
pub fn marker(comment_id: Option<&str>) -> Result<String, CommentError> {
    match comment_id {
        None => Ok(format!("{MARKER_OPEN}{MARKER_CLOSE}")),
        Some(id) if valid_comment_id(id) => Ok(format!("{MARKER_OPEN}:{id}{MARKER_CLOSE}")),
        Some(id) => Err(CommentError::CommentId(id.to_string())),
    }
}

/// The comment body: the marker on its own line, then the report with its issue references
/// neutralised ([`neutralise_references`]), fitted so that the whole is at most
/// [`GITHUB_COMMENT_LIMIT`] bytes. Everything added is counted before fitting (see
/// [`MAX_ENVELOPE`]); what does not fit is cut at a line boundary with a notice.
pub fn compose(marker: &str, report: &str) -> String {
    let head = format!("{marker}\n");
    let body = neutralise_references(report);
    let fitted = fit_markdown(&body, GITHUB_COMMENT_LIMIT.saturating_sub(head.len()));
    head + &fitted
}

/// Keeps GitHub from turning `#123`, `owner/repo#123` and `GH-123` into links and
/// cross-references (a "mentioned this" entry on every issue a scenario name or reason
/// happens to name): a word joiner (U+2060, invisible) goes between `#` or `GH-` and the
/// digits. Code spans and fenced code blocks are left alone (GitHub links nothing there), as are
/// numeric character references (`&#35;`). Idempotent. The report's own markup has no such
/// references, so only text from the results is changed.
pub fn neutralise_references(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // The open fence's character and length.
    let mut fence: Option<(u8, usize)> = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start_matches(' ');
        let run = |c: u8| trimmed.bytes().take_while(|&b| b == c).count();
        match fence {
            Some((c, n)) => {
                let r = run(c);
                if r >= n && trimmed[r..].trim().is_empty() {
                    fence = None;
                }
                out.push_str(line);
            }
            None => {
                fence = [b'`', b'~'].into_iter().map(|c| (c, run(c))).find(|&(_, n)| n >= 3);
                if fence.is_some() {
                    out.push_str(line);
                } else {
                    neutralise_line(line, &mut out);
                }
            }
        }
    }
    out
}

/// One line outside fenced code: copies `line` to `out` with references neutralised, skipping
/// code spans.
fn neutralise_line(line: &str, out: &mut String) {
    let b = line.as_bytes();
    let run_at = |i: usize| b[i..].iter().take_while(|&&c| c == b'`').count();
    let digit_at = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let (mut i, mut copied) = (0usize, 0usize);
    while i < b.len() {
        match b[i] {
            // An escaped backtick opens no code span (an escaped `#` still renders as `#`).
            b'\\' if matches!(b.get(i + 1), Some(b'`' | b'\\')) => i += 2,
            b'`' => {
                // A code span runs to the next run of as many backticks; without one, the run is text.
                let n = run_at(i);
                let mut j = i + n;
                let mut end = i + n;
                while j < b.len() {
                    if b[j] == b'`' {
                        let m = run_at(j);
                        if m == n {
                            end = j + m;
                            break;
                        }
                        j += m;
                    } else {
                        j += 1;
                    }
                }
                i = end;
            }
            b'#' if digit_at(i + 1) && (i == 0 || b[i - 1] != b'&') => {
                out.push_str(&line[copied..=i]);
                out.push(WORD_JOINER);
                copied = i + 1;
                i += 1;
            }
            b'-' if digit_at(i + 1)
                && i >= 2
                && b[i - 2..i].eq_ignore_ascii_case(b"gh")
                && (i == 2 || !b[i - 3].is_ascii_alphanumeric()) =>
            {
                out.push_str(&line[copied..=i]);
                out.push(WORD_JOINER);
                copied = i + 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    out.push_str(&line[copied..]);
}

/// Posts `report` as the pull request's sticky comment, or edits the one we already own.
///
/// Skips (returning [`CommentOutcome::Skipped`], sending nothing) under `--mode never`, without
/// a token, outside a pull request, and on fork pull requests; skips after GitHub refuses a
/// write (403 without a rate limit, 404). Which comments are ours: [`Owner`]; a comment carrying
/// the marker by anyone else is never edited or deleted, and without a known login no comment
/// by a person is. `progress` receives one line per retry and per notable step.
pub async fn upsert(
    ctx: &GithubContext,
    cfg: &CommentConfig,
    report: &str,
    run_failed: bool,
    progress: &dyn Fn(&str),
) -> Result<CommentOutcome, CommentError> {
    let marker = marker(cfg.comment_id.as_deref())?;
    let skip = |reason| Ok(CommentOutcome::Skipped { reason });
    if cfg.mode == Mode::Never {
        return skip(SkipReason::Disabled);
    }
    let Some(token) = &ctx.token else { return skip(SkipReason::NoToken) };
    let Some(pr) = ctx.pr else { return skip(SkipReason::NotAPullRequest) };
    if ctx.read_only_fork() {
        return skip(SkipReason::ForkPullRequest);
    }
    let repo = ctx.repo.as_ref().ok_or(CommentError::NoRepository)?;
    let body = compose(&marker, report);
    let api = Api::new(ctx, token, &cfg.retry, progress)?;
    let owner = match cfg.author.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        Some(a) => Owner::Login(a.to_string()),
        None => api.identity().await?,
    };
    let own = match api.own_comments(repo, pr, &marker, &owner).await? {
        Ok(own) => own,
        Err(reason) => return skip(reason),
    };
    let Some((newest, older)) = own.split_last() else {
        if cfg.mode == Mode::OnFailure && !run_failed {
            return skip(SkipReason::PassedWithoutComment);
        }
        return api.create(repo, pr, &body, &marker, &owner).await;
    };
    let what = format!("update comment {} on {repo}#{pr}", newest.id);
    let path = format!("/repos/{}/{}/issues/comments/{}", repo.owner, repo.name, newest.id);
    let answer = api.call(&what, Method::PATCH, &path, Some(&json!({ "body": body }))).await?;
    let written = match answer.status {
        s if s.is_success() => answer.comment(&what)?,
        StatusCode::NOT_FOUND => {
            progress(&format!("comment {} is gone (deleted meanwhile); creating a new one", newest.id));
            return api.create(repo, pr, &body, &marker, &owner).await;
        }
        // The bot was only the likeliest owner, and GitHub says the token is not it.
        StatusCode::FORBIDDEN if owner == Owner::SomeBot => {
            progress(&format!(
                "github: the token may not edit comment {} ({} {}), so it is not ours; creating our own",
                newest.id,
                answer.status.as_u16(),
                answer.message()
            ));
            return api.create(repo, pr, &body, &marker, &owner).await;
        }
        StatusCode::FORBIDDEN => return skip(answer.refused(&what)),
        _ => return Err(answer.error(&what)),
    };
    let deleted = api.delete_all(repo, older).await;
    Ok(CommentOutcome::Updated { id: written.id, url: written.html_url, deleted })
}

/// Whose comments carrying the marker are ours.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    /// This login's (case-insensitive): `--comment-author`, or the token's identity from
    /// `GET /user` or GraphQL's `viewer`.
    Login(String),
    /// The token is an installation token whose login GitHub would not tell: the bot (user type
    /// `Bot`, login ending in `[bot]`) whose comment carrying the marker is newest. Never a
    /// person: a person's login cannot end in `[bot]`.
    SomeBot,
}

/// Whether `user` is a bot account: type `Bot` and a login ending in `[bot]`.
fn is_bot(user: &User) -> bool {
    user.kind.as_deref() == Some("Bot") && user.login.ends_with("[bot]")
}

/// One issue comment, as the REST API lists it.
#[derive(Debug, Clone, Deserialize)]
struct Comment {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    user: Option<User>,
    #[serde(default)]
    html_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct User {
    login: String,
    /// `User`, `Bot` or `Organization`.
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// A response, read whole.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    /// An earlier attempt may have been carried out although it failed (5xx, lost connection).
    after_ambiguous_failure: bool,
    /// Attempts made, this one included.
    attempts: u32,
}

impl Answer {
    /// GitHub's `message`, or the body as text.
    fn message(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.trim().chars().take(200).collect())
    }

    fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, CommentError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| CommentError::Response { what: what.to_string(), message: e.to_string() })
    }

    fn comment(&self, what: &str) -> Result<Comment, CommentError> {
        self.json(what)
    }

    fn refused(&self, what: &str) -> SkipReason {
        SkipReason::Refused { what: what.to_string(), status: self.status.as_u16(), message: self.message() }
    }

    fn error(&self, what: &str) -> CommentError {
        let (what, status, message) = (what.to_string(), self.status.as_u16(), self.message());
        if self.status == StatusCode::UNAUTHORIZED {
            CommentError::BadCredentials { what, status, message }
        } else {
            CommentError::Status { what, status, attempts: self.attempts, message }
        }
    }
}

/// Why a response is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    RateLimit,
    ServerError,
}

/// 429, 5xx, and 403s that are rate limits (`retry-after`, `x-ratelimit-remaining: 0`, or a
/// message about a rate limit; GitHub's secondary limits sometimes send no header at all).
fn retry_kind(status: StatusCode, headers: &HeaderMap, message: &str) -> Option<Retry> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Some(Retry::RateLimit);
    }
    if status.is_server_error() {
        return Some(Retry::ServerError);
    }
    if status == StatusCode::FORBIDDEN
        && (headers.contains_key("retry-after")
            || header(headers, "x-ratelimit-remaining").is_some_and(|v| v.trim() == "0")
            || message.to_ascii_lowercase().contains("rate limit"))
    {
        return Some(Retry::RateLimit);
    }
    None
}

/// The wait the server asks for: `retry-after` seconds, else the time until `x-ratelimit-reset`
/// when no requests remain.
fn server_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(secs) = header(headers, "retry-after").and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    if header(headers, "x-ratelimit-remaining").is_some_and(|v| v.trim() == "0") {
        let reset = header(headers, "x-ratelimit-reset").and_then(|v| v.trim().parse::<u64>().ok())?;
        let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
        // One second more: the reset time is rounded down to the second.
        return Some(Duration::from_secs(reset.saturating_sub(now) + 1));
    }
    None
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Where GitHub's GraphQL endpoint is, as (base URI, path), given the REST API's base URL:
/// `https://api.github.com/graphql`; GitHub Enterprise Server's `https://HOST/api/v3` has it at
/// `https://HOST/api/graphql`. octocrab joins every path to its base URI's path, hence the pair.
fn graphql_endpoint(api_url: &str) -> (String, &'static str) {
    match api_url.strip_suffix("/api/v3") {
        Some(host) => (host.to_string(), "/api/graphql"),
        None => (api_url.to_string(), "/graphql"),
    }
}

/// The REST calls the comment needs (and one GraphQL query), each with retries.
struct Api<'a> {
    client: Octocrab,
    /// For GraphQL, whose path is not under the REST base on GitHub Enterprise Server.
    graphql: Octocrab,
    graphql_path: &'static str,
    policy: &'a RetryPolicy,
    progress: &'a dyn Fn(&str),
}

impl<'a> Api<'a> {
    fn new(
        ctx: &GithubContext,
        token: &Token,
        policy: &'a RetryPolicy,
        progress: &'a dyn Fn(&str),
    ) -> Result<Api<'a>, CommentError> {
        let failed =
            |e: octocrab::Error| CommentError::Client { api_url: ctx.api_url.clone(), message: error_chain(&e) };
        let build = |base: &str| {
            Octocrab::builder()
                .base_uri(base)
                .map_err(failed)?
                .personal_token(token.expose().to_string())
                .build()
                .map_err(failed)
        };
        let (graphql_base, graphql_path) = graphql_endpoint(&ctx.api_url);
        Ok(Api { client: build(&ctx.api_url)?, graphql: build(&graphql_base)?, graphql_path, policy, progress })
    }

    /// Sends one REST request, retrying as the policy says. Returns the last answer when it is
    /// not worth retrying (success, or an error status for the caller to read).
    async fn call(&self, what: &str, method: Method, path: &str, body: Option<&Value>) -> Result<Answer, CommentError> {
        self.call_on(&self.client, what, method, path, body).await
    }

    /// [`Api::call`] through `client`.
    async fn call_on(
        &self,
        client: &Octocrab,
        what: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, CommentError> {
        let max = self.policy.max_attempts.max(1);
        let mut ambiguous = false;
        for attempt in 1.. {
            let sent = match tokio::time::timeout(self.policy.request_timeout, once(client, &method, path, body)).await
            {
                Ok(sent) => sent,
                Err(_) => Err(format!("no answer within {}", humantime::format_duration(self.policy.request_timeout))),
            };
            let (why, kind, asked) = match sent {
                Ok(mut answer) => {
                    answer.attempts = attempt;
                    let message = answer.message();
                    match retry_kind(answer.status, &answer.headers, &message) {
                        None => {
                            answer.after_ambiguous_failure = ambiguous;
                            return Ok(answer);
                        }
                        Some(_) if attempt >= max => return Err(answer.error(what)),
                        Some(kind) => {
                            ambiguous |= kind == Retry::ServerError;
                            let why = format!("{} {}", answer.status.as_u16(), message);
                            (why, kind, server_wait(&answer.headers, SystemTime::now()))
                        }
                    }
                }
                Err(message) if attempt >= max => {
                    return Err(CommentError::Transport { what: what.to_string(), attempts: attempt, message });
                }
                Err(message) => {
                    ambiguous = true;
                    (message, Retry::ServerError, None)
                }
            };
            let wait = match asked {
                Some(wait) if wait > self.policy.max_server_wait => {
                    return Err(CommentError::WaitTooLong {
                        what: what.to_string(),
                        wait,
                        limit: self.policy.max_server_wait,
                    });
                }
                Some(wait) => wait,
                None if kind == Retry::RateLimit => self.policy.backoff(attempt).max(self.policy.rate_limit_floor),
                None => self.policy.backoff(attempt),
            };
            (self.progress)(&format!(
                "github: {what}: {why}; retrying in {} (attempt {} of {max}{})",
                humantime::format_duration(wait),
                attempt + 1,
                if asked.is_some() { ", as GitHub asked" } else { "" },
            ));
            tokio::time::sleep(wait).await;
        }
        unreachable!("the loop returns by its last attempt")
    }

    /// Who the token is. `GET /user` answers for a personal token. An installation token (an
    /// Actions `GITHUB_TOKEN`, a GitHub App's token) gets 403 there, so GraphQL's `viewer` is
    /// asked, which names an installation's bot (`APP-SLUG[bot]`). When neither answers:
    /// [`Owner::SomeBot`].
    async fn identity(&self) -> Result<Owner, CommentError> {
        let what = "find who the token is (GET /user)";
        let answer = self.call(what, Method::GET, "/user", None).await?;
        match answer.status {
            s if s.is_success() => return Ok(Owner::Login(answer.json::<User>(what)?.login)),
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {}
            _ => return Err(answer.error(what)),
        }
        let refused = format!("{} {}", answer.status.as_u16(), answer.message());
        match self.viewer().await? {
            Ok(login) => {
                (self.progress)(&format!(
                    "github: the token cannot call GET /user ({refused}), as with an app installation token \
                     (an Actions GITHUB_TOKEN or a GitHub App's); GraphQL names it {login}, whose comments are ours"
                ));
                Ok(Owner::Login(login))
            }
            Err(why) => {
                (self.progress)(&format!(
                    "github: the token cannot call GET /user ({refused}) and GraphQL does not name it ({why}); \
                     taking as ours the bot (type Bot, login ending in [bot]) whose comment with the marker is newest, \
                     never a person's (set --comment-author to name the login)"
                ));
                Ok(Owner::SomeBot)
            }
        }
    }

    /// GraphQL's `viewer { login }`: the login, or why there is none.
    async fn viewer(&self) -> Result<Result<String, String>, CommentError> {
        let what = "find who the token is (GraphQL viewer)";
        let query = json!({ "query": "query { viewer { login } }" });
        let answer = self.call_on(&self.graphql, what, Method::POST, self.graphql_path, Some(&query)).await?;
        if answer.status == StatusCode::UNAUTHORIZED {
            return Err(answer.error(what));
        }
        if !answer.status.is_success() {
            return Ok(Err(format!("{} {}", answer.status.as_u16(), answer.message())));
        }
        let json: Value = answer.json(what)?;
        match json["data"]["viewer"]["login"].as_str().map(str::trim).filter(|l| !l.is_empty()) {
            Some(login) => Ok(Ok(login.to_string())),
            None => Ok(Err(json["errors"][0]["message"].as_str().unwrap_or("no viewer in the answer").to_string())),
        }
    }

    /// Our comments carrying `marker`, oldest first, following pagination; or the reason to
    /// skip when GitHub refuses to list them.
    async fn own_comments(
        &self,
        repo: &Repo,
        pr: u64,
        marker: &str,
        owner: &Owner,
    ) -> Result<Result<Vec<Comment>, SkipReason>, CommentError> {
        let mut marked = Vec::new();
        let mut page = 1u64;
        loop {
            let what = format!("list comments of {repo}#{pr} (page {page})");
            let path = format!("/repos/{}/{}/issues/{pr}/comments?per_page=100&page={page}", repo.owner, repo.name);
            let answer = self.call(&what, Method::GET, &path, None).await?;
            match answer.status {
                s if s.is_success() => {}
                StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => return Ok(Err(answer.refused(&what))),
                _ => return Err(answer.error(&what)),
            }
            marked.extend(
                answer
                    .json::<Vec<Comment>>(&what)?
                    .into_iter()
                    .filter(|c| c.body.as_deref().unwrap_or("").contains(marker)),
            );
            match next_page(&answer.headers) {
                Some(next) if next > page => page = next,
                _ => break,
            }
        }
        marked.sort_by_key(|c| c.id);
        let author = match owner {
            Owner::Login(login) => Some(login.clone()),
            Owner::SomeBot => {
                let newest = marked.iter().rev().find_map(|c| c.user.as_ref().filter(|u| is_bot(u)));
                if let Some(bot) = newest {
                    (self.progress)(&format!(
                        "github: taking {}'s comment(s) with the marker on {repo}#{pr} as ours (the newest by a bot)",
                        bot.login
                    ));
                }
                newest.map(|u| u.login.clone())
            }
        };
        let is_ours =
            |c: &Comment| c.user.as_ref().zip(author.as_deref()).is_some_and(|(u, a)| u.login.eq_ignore_ascii_case(a));
        let (own, others): (Vec<Comment>, Vec<Comment>) = marked.into_iter().partition(is_ours);
        if !others.is_empty() {
            let whose = match &author {
                Some(a) => format!("by {a}"),
                None => "by a bot".to_string(),
            };
            (self.progress)(&format!(
                "github: {} comment(s) on {repo}#{pr} carry the marker but are not {whose}; leaving them alone",
                others.len()
            ));
        }
        Ok(Ok(own))
    }

    async fn create(
        &self,
        repo: &Repo,
        pr: u64,
        body: &str,
        marker: &str,
        owner: &Owner,
    ) -> Result<CommentOutcome, CommentError> {
        let what = format!("create a comment on {repo}#{pr}");
        let path = format!("/repos/{}/{}/issues/{pr}/comments", repo.owner, repo.name);
        let answer = self.call(&what, Method::POST, &path, Some(&json!({ "body": body }))).await?;
        match answer.status {
            s if s.is_success() => {}
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                return Ok(CommentOutcome::Skipped { reason: answer.refused(&what) });
            }
            _ => return Err(answer.error(&what)),
        }
        let created = answer.comment(&what)?;
        let mut deleted = Vec::new();
        if answer.after_ambiguous_failure {
            // A failed attempt may have created a comment too: keep only the newest.
            (self.progress)("github: an earlier attempt may have created a comment too; removing duplicates");
            // Whatever the owner rule, the comment just created says who we are.
            let owner = match created.user.as_ref() {
                Some(u) => Owner::Login(u.login.clone()),
                None => owner.clone(),
            };
            if let Ok(own) = self.own_comments(repo, pr, marker, &owner).await? {
                let older: Vec<Comment> = own.into_iter().filter(|c| c.id < created.id).collect();
                deleted = self.delete_all(repo, &older).await;
            }
        }
        Ok(CommentOutcome::Created { id: created.id, url: created.html_url, deleted })
    }

    /// Deletes `comments`; a failure is reported and does not stop the others. Returns the ids deleted.
    async fn delete_all(&self, repo: &Repo, comments: &[Comment]) -> Vec<u64> {
        let mut deleted = Vec::new();
        for c in comments {
            let what = format!("delete duplicate comment {} on {repo}", c.id);
            let path = format!("/repos/{}/{}/issues/comments/{}", repo.owner, repo.name, c.id);
            match self.call(&what, Method::DELETE, &path, None).await {
                Ok(a) if a.status.is_success() => deleted.push(c.id),
                Ok(a) => (self.progress)(&format!(
                    "github: could not {what} ({} {}); leaving it",
                    a.status.as_u16(),
                    a.message()
                )),
                Err(e) => (self.progress)(&format!("github: {e}; leaving it")),
            }
        }
        deleted
    }
}

/// One attempt through `client`; a transport failure comes back as its message.
async fn once(client: &Octocrab, method: &Method, path: &str, body: Option<&Value>) -> Result<Answer, String> {
    let sent = match *method {
        Method::GET => client._get(path).await,
        Method::POST => client._post(path, body).await,
        Method::PATCH => client._patch(path, body).await,
        Method::DELETE => client._delete(path, None::<&()>).await,
        _ => unreachable!("only GET, POST, PATCH and DELETE are sent"),
    };
    let (parts, body) = sent.map_err(|e| error_chain(&e))?.into_parts();
    let body = body.collect().await.map_err(|e| format!("reading the response: {}", error_chain(&e)))?;
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.to_bytes(),
        after_ambiguous_failure: false,
        attempts: 1,
    })
}

/// The `page` of the `rel="next"` link in a `Link` header, if there is one.
fn next_page(headers: &HeaderMap) -> Option<u64> {
    let link = header(headers, "link")?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        if !params.split(';').any(|p| p.trim().replace(' ', "") == "rel=\"next\"") {
            return None;
        }
        let url = url.trim().trim_start_matches('<').trim_end_matches('>');
        let query = url.split_once('?')?.1;
        query.split('&').find_map(|kv| kv.strip_prefix("page=")).and_then(|p| p.parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fit::notice;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn which_answers_are_retried() {
        let check = |status: u16, h: &[(&'static str, &str)], message: &str, expected: Option<Retry>| {
            let got = retry_kind(StatusCode::from_u16(status).unwrap(), &headers(h), message);
            assert_eq!(got, expected, "{status} {h:?} {message}");
        };
        check(429, &[], "", Some(Retry::RateLimit));
        check(502, &[], "", Some(Retry::ServerError));
        check(403, &[], "You have exceeded a secondary rate limit. Please wait.", Some(Retry::RateLimit));
        check(403, &[("retry-after", "30")], "", Some(Retry::RateLimit));
        check(403, &[("x-ratelimit-remaining", "0")], "API rate limit exceeded", Some(Retry::RateLimit));
        check(403, &[("x-ratelimit-remaining", "4999")], "Resource not accessible by integration", None);
        check(404, &[], "Not Found", None);
        check(401, &[], "Bad credentials", None);
        check(422, &[], "Validation Failed", None);
    }

    #[test]
    fn server_waits_from_headers() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(server_wait(&headers(&[("retry-after", "7")]), now), Some(Duration::from_secs(7)));
        let reset = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1010")]);
        assert_eq!(server_wait(&reset, now), Some(Duration::from_secs(11)));
        let not_exhausted = headers(&[("x-ratelimit-remaining", "10"), ("x-ratelimit-reset", "1010")]);
        assert_eq!(server_wait(&not_exhausted, now), None);
        assert_eq!(server_wait(&headers(&[]), now), None);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(10),
            ..RetryPolicy::default()
        };
        let waits: Vec<u64> = (1..=5).map(|a| p.backoff(a).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 10, 10]);
    }

    #[test]
    fn next_page_from_link_headers() {
        let link = "<https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=3>; rel=\"next\", \
                    <https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=5>; rel=\"last\"";
        assert_eq!(next_page(&headers(&[("link", link)])), Some(3));
        let last = "<https://x/comments?page=1>; rel=\"prev\", <https://x/comments?page=1>; rel=\"first\"";
        assert_eq!(next_page(&headers(&[("link", last)])), None);
        assert_eq!(next_page(&headers(&[])), None);
    }

    #[test]
    fn markers_and_bodies() {
        assert_eq!(marker(None).unwrap(), "<!-- chronik-chaos:report -->");
        assert_eq!(marker(Some("linux-3")).unwrap(), "<!-- chronik-chaos:report:linux-3 -->");
        assert!(marker(Some("x -->")).is_err());
        assert!(marker(Some("")).is_err());
        assert!(marker(Some(&"a".repeat(MAX_COMMENT_ID_LEN))).is_ok());
        let err = marker(Some(&"a".repeat(MAX_COMMENT_ID_LEN + 1))).unwrap_err();
        assert!(err.to_string().contains("--comment-id"), "{err}");
        let m = marker(None).unwrap();
        assert_eq!(compose(&m, "# Report\n"), format!("{m}\n# Report\n"));
        let big = "row\n".repeat(40_000);
        let body = compose(&m, &big);
        assert!(body.len() <= GITHUB_COMMENT_LIMIT);
        assert!(body.starts_with(&m));
    }

    #[test]
    fn the_envelope_is_the_longest_marker_line() {
        let longest = marker(Some(&"x".repeat(MAX_COMMENT_ID_LEN))).unwrap();
        assert_eq!(longest.len() + 1, MAX_ENVELOPE);
        // Exactly the room the longest marker leaves: whole. One byte more: cut.
        let room = GITHUB_COMMENT_LIMIT - MAX_ENVELOPE;
        let fits = format!("{}\n", "r".repeat(room - 1));
        assert_eq!(compose(&longest, &fits), format!("{longest}\n{fits}"));
        let over = format!("{}\n", "r".repeat(room));
        let body = compose(&longest, &over);
        assert!(body.len() <= GITHUB_COMMENT_LIMIT && body.ends_with(&notice(room)), "cut with a notice");
    }

    #[test]
    fn issue_references_are_neutralised_outside_code() {
        let wj = WORD_JOINER;
        let n = neutralise_references;
        assert_eq!(
            n("fixes #123 and acme/chaos#45, see GH-7"),
            format!("fixes #{wj}123 and acme/chaos#{wj}45, see GH-{wj}7")
        );
        assert_eq!(n("\\#12 gh-3 (GH-4)"), format!("\\#{wj}12 gh-{wj}3 (GH-{wj}4)"));
        // Not references: headings, anchors, entities, words ending in gh, a # not before a digit.
        for text in ["# Report", "### ❌ x — FAIL", "[a](#scenario-1)", "&#35; &#x23;", "high-5 laugh-2", "#x1", "C#"]
        {
            assert_eq!(n(text), text);
        }
        // Code spans and fenced blocks are left as they are; an escaped backtick opens no span.
        assert_eq!(n("`#1` x #2 ``a ` #3`` \\`#4"), format!("`#1` x #{wj}2 ``a ` #3`` \\`#{wj}4"));
        assert_eq!(n("an unclosed ` #5"), format!("an unclosed ` #{wj}5"));
        let fenced = "before #1\n````text\nlog #2\n```\nstill code #3\n````\nafter #4\n";
        assert_eq!(n(fenced), format!("before #{wj}1\n````text\nlog #2\n```\nstill code #3\n````\nafter #{wj}4\n"));
        assert_eq!(n("~~~\n#9\n~~~\n#8"), format!("~~~\n#9\n~~~\n#{wj}8"));
        // Idempotent, and multi-byte text around a reference survives.
        let once = n("— ✅ #77 é");
        assert_eq!(n(&once), once);
        assert_eq!(once, format!("— ✅ #{wj}77 é"));
    }

    #[test]
    fn graphql_endpoints() {
        assert_eq!(graphql_endpoint("https://api.github.com"), ("https://api.github.com".to_string(), "/graphql"));
        assert_eq!(graphql_endpoint("https://ghe.example/api/v3"), ("https://ghe.example".to_string(), "/api/graphql"));
        assert_eq!(graphql_endpoint("http://127.0.0.1:9"), ("http://127.0.0.1:9".to_string(), "/graphql"));
    }

    #[test]
    fn bots_are_type_bot_with_a_bot_login() {
        let user = |login: &str, kind: Option<&str>| User { login: login.into(), kind: kind.map(str::to_string) };
        assert!(is_bot(&user("chaos-app[bot]", Some("Bot"))));
        assert!(is_bot(&user(ACTIONS_BOT, Some("Bot"))));
        assert!(!is_bot(&user("alice", Some("User"))));
        assert!(!is_bot(&user("renovate", Some("Bot"))), "a login without [bot]");
        assert!(!is_bot(&user("x[bot]", Some("User"))));
        assert!(!is_bot(&user("x[bot]", None)));
    }

    #[test]
    fn skip_notices_say_what_to_do() {
        assert!(SkipReason::ForkPullRequest.to_string().contains("workflow_run"));
        assert!(SkipReason::NoToken.to_string().contains("GITHUB_TOKEN"));
        assert!(SkipReason::NoToken.needs_fallback());
        assert!(!SkipReason::Disabled.needs_fallback());
        assert!(!SkipReason::PassedWithoutComment.needs_fallback());
    }
}
