//! The sticky pull-request comment: one comment per marker, owned by the token's identity,
//! created or updated in place (older duplicates it owns deleted), retried on rate limits and
//! server errors, and skipped (never an error) where the token cannot write.
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

use super::{GithubContext, Repo, Token};
use crate::report::fit::{fit_markdown, GITHUB_COMMENT_LIMIT};

/// The login that owns comments made with an Actions `GITHUB_TOKEN`, which cannot call `GET /user`.
pub const ACTIONS_BOT: &str = "github-actions[bot]";

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
    /// Suffix of the hidden marker, so that several jobs can each own one comment.
    pub marker_id: Option<String>,
    /// The login whose comments are ours. `None`: `GET /user`, or [`ACTIONS_BOT`] when the token
    /// cannot call it.
    pub author: Option<String>,
    pub retry: RetryPolicy,
}

impl Default for CommentConfig {
    fn default() -> Self {
        CommentConfig { mode: Mode::Always, marker_id: None, author: None, retry: RetryPolicy::default() }
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
    #[error("--marker-id `{0}` may hold only ASCII letters, digits, `.`, `_` and `-`")]
    MarkerId(String),
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

/// The hidden marker that identifies our comment, `<!-- chronik-chaos:report -->` or, with an id,
/// `<!-- chronik-chaos:report:ID -->`.
pub fn marker(marker_id: Option<&str>) -> Result<String, CommentError> {
    match marker_id {
        None => Ok("<!-- chronik-chaos:report -->".to_string()),
        Some(id) if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) => {
            Ok(format!("<!-- chronik-chaos:report:{id} -->"))
        }
        Some(id) => Err(CommentError::MarkerId(id.to_string())),
    }
}

/// The comment body: the marker on its own line, then the report fitted so that the whole is at
/// most [`GITHUB_COMMENT_LIMIT`] bytes.
pub fn compose(marker: &str, report: &str) -> String {
    let head = format!("{marker}\n");
    let fitted = fit_markdown(report, GITHUB_COMMENT_LIMIT - head.len());
    head + &fitted
}

/// Posts `report` as the pull request's sticky comment, or edits the one we already own.
///
/// Skips (returning [`CommentOutcome::Skipped`], sending nothing) under `--mode never`, without
/// a token, outside a pull request, and on fork pull requests; skips after GitHub refuses a
/// write (403 without a rate limit, 404). Comments carrying the marker by anyone but `author`
/// are never edited or deleted. `progress` receives one line per retry and per notable step.
pub async fn upsert(
    ctx: &GithubContext,
    cfg: &CommentConfig,
    report: &str,
    run_failed: bool,
    progress: &dyn Fn(&str),
) -> Result<CommentOutcome, CommentError> {
    let marker = marker(cfg.marker_id.as_deref())?;
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
    let author = match &cfg.author {
        Some(a) => a.clone(),
        None => api.identity().await?,
    };
    let own = match api.own_comments(repo, pr, &marker, &author).await? {
        Ok(own) => own,
        Err(reason) => return skip(reason),
    };
    let Some((newest, older)) = own.split_last() else {
        if cfg.mode == Mode::OnFailure && !run_failed {
            return skip(SkipReason::PassedWithoutComment);
        }
        return api.create(repo, pr, &body, &marker, &author).await;
    };
    let what = format!("update comment {} on {repo}#{pr}", newest.id);
    let path = format!("/repos/{}/{}/issues/comments/{}", repo.owner, repo.name, newest.id);
    let answer = api.call(&what, Method::PATCH, &path, Some(&json!({ "body": body }))).await?;
    let written = match answer.status {
        s if s.is_success() => answer.comment(&what)?,
        StatusCode::NOT_FOUND => {
            progress(&format!("comment {} is gone (deleted meanwhile); creating a new one", newest.id));
            return api.create(repo, pr, &body, &marker, &author).await;
        }
        StatusCode::FORBIDDEN => return skip(answer.refused(&what)),
        _ => return Err(answer.error(&what)),
    };
    let deleted = api.delete_all(repo, older).await;
    Ok(CommentOutcome::Updated { id: written.id, url: written.html_url, deleted })
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

/// The error and its causes on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !s.contains(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        source = e.source();
    }
    s
}

/// The REST calls the comment needs, each with retries.
struct Api<'a> {
    client: Octocrab,
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
        let failed = |e: octocrab::Error| CommentError::Client { api_url: ctx.api_url.clone(), message: chain(&e) };
        let client = Octocrab::builder()
            .base_uri(ctx.api_url.as_str())
            .map_err(failed)?
            .personal_token(token.expose().to_string())
            .build()
            .map_err(failed)?;
        Ok(Api { client, policy, progress })
    }

    /// Sends one request, retrying as the policy says. Returns the last answer when it is not
    /// worth retrying (success, or an error status for the caller to read).
    async fn call(&self, what: &str, method: Method, path: &str, body: Option<&Value>) -> Result<Answer, CommentError> {
        let max = self.policy.max_attempts.max(1);
        let mut ambiguous = false;
        for attempt in 1.. {
            let sent = match tokio::time::timeout(self.policy.request_timeout, self.once(&method, path, body)).await {
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

    /// One attempt; a transport failure comes back as its message.
    async fn once(&self, method: &Method, path: &str, body: Option<&Value>) -> Result<Answer, String> {
        let sent = match *method {
            Method::GET => self.client._get(path).await,
            Method::POST => self.client._post(path, body).await,
            Method::PATCH => self.client._patch(path, body).await,
            Method::DELETE => self.client._delete(path, None::<&()>).await,
            _ => unreachable!("only GET, POST, PATCH and DELETE are sent"),
        };
        let (parts, body) = sent.map_err(|e| chain(&e))?.into_parts();
        let body = body.collect().await.map_err(|e| format!("reading the response: {}", chain(&e)))?;
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body: body.to_bytes(),
            after_ambiguous_failure: false,
            attempts: 1,
        })
    }

    /// The login the token acts as: `GET /user`, or [`ACTIONS_BOT`] for tokens that cannot call
    /// it (an Actions `GITHUB_TOKEN` gets 403).
    async fn identity(&self) -> Result<String, CommentError> {
        let what = "find who the token is (GET /user)";
        let answer = self.call(what, Method::GET, "/user", None).await?;
        match answer.status {
            s if s.is_success() => Ok(answer.json::<User>(what)?.login),
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                (self.progress)(&format!(
                    "github: the token cannot call GET /user ({} {}), as with an Actions GITHUB_TOKEN; \
                     expecting our comments to be by {ACTIONS_BOT} (override with --author)",
                    answer.status.as_u16(),
                    answer.message()
                ));
                Ok(ACTIONS_BOT.to_string())
            }
            _ => Err(answer.error(what)),
        }
    }

    /// Our comments carrying `marker`, oldest first, following pagination; or the reason to
    /// skip when GitHub refuses to list them.
    async fn own_comments(
        &self,
        repo: &Repo,
        pr: u64,
        marker: &str,
        author: &str,
    ) -> Result<Result<Vec<Comment>, SkipReason>, CommentError> {
        let mut own = Vec::new();
        let mut others = 0usize;
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
            for c in answer.json::<Vec<Comment>>(&what)? {
                if !c.body.as_deref().unwrap_or("").contains(marker) {
                    continue;
                }
                if c.user.as_ref().is_some_and(|u| u.login.eq_ignore_ascii_case(author)) {
                    own.push(c);
                } else {
                    others += 1;
                }
            }
            match next_page(&answer.headers) {
                Some(next) if next > page => page = next,
                _ => break,
            }
        }
        if others > 0 {
            (self.progress)(&format!(
                "github: {others} comment(s) on {repo}#{pr} carry the marker but are not by {author}; leaving them alone"
            ));
        }
        own.sort_by_key(|c| c.id);
        Ok(Ok(own))
    }

    async fn create(
        &self,
        repo: &Repo,
        pr: u64,
        body: &str,
        marker: &str,
        author: &str,
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
            if let Ok(own) = self.own_comments(repo, pr, marker, author).await? {
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
        let m = marker(None).unwrap();
        assert_eq!(compose(&m, "# Report\n"), format!("{m}\n# Report\n"));
        let big = "row\n".repeat(40_000);
        let body = compose(&m, &big);
        assert!(body.len() <= GITHUB_COMMENT_LIMIT);
        assert!(body.starts_with(&m));
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
