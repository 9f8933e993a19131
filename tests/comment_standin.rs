//! The sticky pull-request comment (`github::comment::upsert` and `chronik-chaos comment`)
//! against a **stand-in for the GitHub REST API**: a local hyper server that keeps issue comments
//! in memory, knows a few tokens (a personal token, an Actions token that cannot call `GET /user`,
//! a read-only token), paginates with `Link` headers, refuses bodies over 65,536 characters as
//! GitHub does (422), can be told to answer the next matching request with a scripted error, and
//! records every request (method, path with query, body, `Authorization`) so that tests assert on
//! what was sent. Every test named `standin_*` runs against it; no test here needs the network.
//!
//! The last test, `github_live_*`, talks to real GitHub: it is ignored unless run on purpose
//! (`--include-ignored`, as `.ci/run` does when `GITHUB_LIVE_TEST_PR` (`owner/repo#123`) and
//! `GITHUB_TOKEN` are set).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chronik_chaos::github::comment::{
    self, CommentConfig, CommentError, CommentOutcome, Mode, RetryPolicy, SkipReason, ACTIONS_BOT,
};
use chronik_chaos::github::{GithubContext, Repo, Token};
use chronik_chaos::report::fit::{notice, GITHUB_COMMENT_LIMIT};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

const MARKER: &str = "<!-- chronik-chaos:report -->";
/// A personal access token: `GET /user` answers `alice`.
const PAT: &str = "pat-alice";
/// An Actions `GITHUB_TOKEN`: `GET /user` is refused; comments are by github-actions[bot].
const ACTIONS: &str = "ghs-actions";
/// A fork pull request's token: reads work, writes are refused.
const READ_ONLY: &str = "ghs-read-only";

// ---------------------------------------------------------------------------------------------
// The stand-in

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    body: String,
    auth: Option<String>,
}

impl Recorded {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Debug, Clone)]
struct StoredComment {
    id: u64,
    issue: u64,
    login: String,
    body: String,
}

/// An answer given once, instead of the normal one, to the next request that matches.
struct Scripted {
    method: &'static str,
    path_prefix: String,
    status: u16,
    headers: Vec<(&'static str, String)>,
    message: String,
    /// Carry the request out anyway (a failure after the fact, as a 502 from a proxy can be).
    apply: bool,
}

#[derive(Default)]
struct State {
    comments: Vec<StoredComment>,
    next_id: u64,
    requests: Vec<Recorded>,
    scripted: VecDeque<Scripted>,
}

struct StandIn {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl StandIn {
    async fn start() -> StandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State { next_id: 1000, ..State::default() }));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(state.clone(), addr, req));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        StandIn { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a comment on pull request 7 of acme/chaos; returns its id.
    fn seed(&self, login: &str, body: &str) -> u64 {
        let mut s = self.state.lock().unwrap();
        s.next_id += 1;
        let id = s.next_id;
        s.comments.push(StoredComment { id, issue: 7, login: login.to_string(), body: body.to_string() });
        id
    }

    fn script(
        &self,
        method: &'static str,
        path_prefix: &str,
        status: u16,
        headers: &[(&'static str, &str)],
        message: &str,
    ) {
        self.script_full(method, path_prefix, status, headers, message, false);
    }

    fn script_full(
        &self,
        method: &'static str,
        path_prefix: &str,
        status: u16,
        headers: &[(&'static str, &str)],
        message: &str,
        apply: bool,
    ) {
        self.state.lock().unwrap().scripted.push_back(Scripted {
            method,
            path_prefix: path_prefix.to_string(),
            status,
            headers: headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            message: message.to_string(),
            apply,
        });
    }

    fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Requests that change something (anything but GET).
    fn writes(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.method != "GET").collect()
    }

    fn comments(&self) -> Vec<StoredComment> {
        self.state.lock().unwrap().comments.clone()
    }

    fn comment(&self, id: u64) -> Option<StoredComment> {
        self.comments().into_iter().find(|c| c.id == id)
    }
}

async fn handle(
    state: Arc<Mutex<State>>,
    addr: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = String::from_utf8(req.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let mut s = state.lock().unwrap();
    s.requests.push(Recorded { method: method.clone(), path: path.clone(), body: body.clone(), auth: auth.clone() });
    let scripted = s.scripted.iter().position(|x| x.method == method && path.starts_with(&x.path_prefix));
    if let Some(i) = scripted {
        let x = s.scripted.remove(i).unwrap();
        if x.apply {
            let _ = route(&mut s, addr, &method, &path, &body, auth.as_deref());
        }
        let mut resp =
            reply(x.status, json!({ "message": x.message, "documentation_url": "https://docs.github.com/rest" }));
        for (k, v) in x.headers {
            resp.headers_mut().insert(k, v.parse().unwrap());
        }
        return Ok(resp);
    }
    Ok(route(&mut s, addr, &method, &path, &body, auth.as_deref()))
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut().insert("content-type", "application/json; charset=utf-8".parse().unwrap());
    r.headers_mut().insert("x-ratelimit-remaining", "4999".parse().unwrap());
    r
}

fn error(status: u16, message: &str) -> Response<Full<Bytes>> {
    reply(status, json!({ "message": message, "documentation_url": "https://docs.github.com/rest" }))
}

fn comment_json(c: &StoredComment) -> Value {
    json!({
        "id": c.id,
        "body": c.body,
        "user": { "login": c.login, "type": if c.login.ends_with("[bot]") { "Bot" } else { "User" } },
        "html_url": format!("https://github.com/acme/chaos/pull/{}#issuecomment-{}", c.issue, c.id),
    })
}

/// The normal answer: GitHub's REST API for the few endpoints the comment uses.
fn route(
    s: &mut State,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    auth: Option<&str>,
) -> Response<Full<Bytes>> {
    let login = match auth.and_then(|a| a.strip_prefix("Bearer ")) {
        None => return error(401, "Requires authentication"),
        Some(PAT) => "alice",
        Some(ACTIONS) | Some(READ_ONLY) => ACTIONS_BOT,
        Some(_) => return error(401, "Bad credentials"),
    };
    let read_only = auth == Some(&format!("Bearer {READ_ONLY}"));
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    let param = |name: &str| {
        query.split('&').find_map(|kv| kv.strip_prefix(&format!("{name}=")[..])).and_then(|v| v.parse::<usize>().ok())
    };
    let parts: Vec<&str> = route.trim_start_matches('/').split('/').collect();
    let new_body = || serde_json::from_str::<Value>(body).ok().and_then(|v| v["body"].as_str().map(str::to_string));
    match (method, parts.as_slice()) {
        ("GET", ["user"]) if login == "alice" => reply(200, json!({ "login": "alice", "type": "User" })),
        ("GET", ["user"]) => error(403, "Resource not accessible by integration"),
        ("GET", ["repos", "acme", "chaos", "issues", n, "comments"]) => {
            let issue: u64 = n.parse().unwrap();
            let per_page = param("per_page").unwrap_or(30).min(100);
            let page = param("page").unwrap_or(1).max(1);
            let all: Vec<&StoredComment> = s.comments.iter().filter(|c| c.issue == issue).collect();
            let pages = all.len().div_ceil(per_page).max(1);
            let items: Vec<Value> =
                all.iter().skip((page - 1) * per_page).take(per_page).map(|c| comment_json(c)).collect();
            let mut resp = reply(200, Value::Array(items));
            let link = |p: usize, rel: &str| {
                format!("<http://{addr}/repos/acme/chaos/issues/{issue}/comments?per_page={per_page}&page={p}>; rel=\"{rel}\"")
            };
            let mut links = Vec::new();
            if page < pages {
                links.push(link(page + 1, "next"));
                links.push(link(pages, "last"));
            }
            if page > 1 {
                links.push(link(1, "first"));
                links.push(link(page - 1, "prev"));
            }
            if !links.is_empty() {
                resp.headers_mut().insert("link", links.join(", ").parse().unwrap());
            }
            resp
        }
        (_, ["repos", "acme", "chaos", "issues", ..]) if read_only && method != "GET" => {
            error(403, "Resource not accessible by integration")
        }
        ("POST", ["repos", "acme", "chaos", "issues", n, "comments"]) => {
            let Some(text) = new_body() else { return error(422, "Invalid request.\n\n\"body\" wasn't supplied.") };
            if text.chars().count() > GITHUB_COMMENT_LIMIT {
                return error(422, "Validation Failed: body is too long (maximum is 65536 characters)");
            }
            s.next_id += 1;
            let c = StoredComment { id: s.next_id, issue: n.parse().unwrap(), login: login.to_string(), body: text };
            s.comments.push(c.clone());
            reply(201, comment_json(&c))
        }
        ("PATCH", ["repos", "acme", "chaos", "issues", "comments", id]) => {
            let id: u64 = id.parse().unwrap();
            let Some(text) = new_body() else { return error(422, "Invalid request.") };
            if text.chars().count() > GITHUB_COMMENT_LIMIT {
                return error(422, "Validation Failed: body is too long (maximum is 65536 characters)");
            }
            match s.comments.iter_mut().find(|c| c.id == id) {
                None => error(404, "Not Found"),
                Some(c) if c.login != login => error(403, "You cannot edit someone else's comment"),
                Some(c) => {
                    c.body = text;
                    reply(200, comment_json(c))
                }
            }
        }
        ("DELETE", ["repos", "acme", "chaos", "issues", "comments", id]) => {
            let id: u64 = id.parse().unwrap();
            match s.comments.iter().position(|c| c.id == id) {
                None => error(404, "Not Found"),
                Some(i) if s.comments[i].login != login => error(403, "You cannot delete someone else's comment"),
                Some(i) => {
                    s.comments.remove(i);
                    let mut r = Response::new(Full::new(Bytes::new()));
                    *r.status_mut() = StatusCode::NO_CONTENT;
                    r
                }
            }
        }
        _ => error(404, "Not Found"),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Pull request 7 of acme/chaos on the stand-in, with `token`.
fn ctx(standin: &StandIn, token: Option<&str>) -> GithubContext {
    GithubContext {
        token: token.map(Token::new),
        repo: Some(Repo { owner: "acme".into(), name: "chaos".into() }),
        pr: Some(7),
        api_url: standin.url(),
        fork: false,
        event_name: Some("pull_request".into()),
    }
}

/// Waits of a few milliseconds, so that retries are fast.
fn fast() -> CommentConfig {
    CommentConfig {
        retry: RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
            rate_limit_floor: Duration::from_millis(20),
            max_server_wait: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        },
        ..CommentConfig::default()
    }
}

/// Runs `upsert`, returning its outcome and the progress lines it printed.
async fn upsert(
    ctx: &GithubContext,
    cfg: &CommentConfig,
    report: &str,
    failed: bool,
) -> (Result<CommentOutcome, CommentError>, Vec<String>) {
    let lines = RefCell::new(Vec::new());
    let outcome = comment::upsert(ctx, cfg, report, failed, &|l| {
        eprintln!("{l}");
        lines.borrow_mut().push(l.to_string())
    })
    .await;
    (outcome, lines.into_inner())
}

fn created_id(outcome: &CommentOutcome) -> u64 {
    match outcome {
        CommentOutcome::Created { id, .. } => *id,
        other => panic!("expected a created comment, got {other:?}"),
    }
}

fn paths(requests: &[Recorded]) -> Vec<String> {
    requests.iter().map(|r| format!("{} {}", r.method, r.path)).collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn standin_creates_a_comment_when_none_exists() {
    let gh = StandIn::start().await;
    let (outcome, _) = upsert(&ctx(&gh, Some(PAT)), &fast(), "# Chaos report\nall passed\n", false).await;
    let id = created_id(&outcome.unwrap());
    assert_eq!(
        paths(&gh.requests()),
        [
            "GET /user",
            "GET /repos/acme/chaos/issues/7/comments?per_page=100&page=1",
            "POST /repos/acme/chaos/issues/7/comments",
        ]
    );
    assert!(gh.requests().iter().all(|r| r.auth.as_deref() == Some("Bearer pat-alice")), "the token is sent");
    let posted = gh.writes()[0].json()["body"].as_str().unwrap().to_string();
    assert_eq!(posted, format!("{MARKER}\n# Chaos report\nall passed\n"));
    let stored = gh.comment(id).unwrap();
    assert_eq!((stored.login.as_str(), stored.body), ("alice", posted));
}

#[tokio::test]
async fn standin_updates_its_own_comment_with_patch() {
    let gh = StandIn::start().await;
    let other = gh.seed("bob", "looks good");
    let own = gh.seed("alice", &format!("{MARKER}\nold report\n"));
    let (outcome, _) = upsert(&ctx(&gh, Some(PAT)), &fast(), "new report\n", false).await;
    match outcome.unwrap() {
        CommentOutcome::Updated { id, url, deleted } => {
            assert_eq!(id, own);
            assert_eq!(url.unwrap(), format!("https://github.com/acme/chaos/pull/7#issuecomment-{own}"));
            assert!(deleted.is_empty());
        }
        other => panic!("expected an update, got {other:?}"),
    }
    assert_eq!(paths(&gh.writes()), [format!("PATCH /repos/acme/chaos/issues/comments/{own}")], "no POST");
    assert_eq!(gh.comment(own).unwrap().body, format!("{MARKER}\nnew report\n"));
    assert_eq!(gh.comment(other).unwrap().body, "looks good");
    assert_eq!(gh.comments().len(), 2);
}

#[tokio::test]
async fn standin_ignores_another_users_comment_that_carries_the_marker() {
    let gh = StandIn::start().await;
    let theirs = gh.seed("mallory", &format!("{MARKER}\nnot yours\n"));
    // An Actions token: GET /user is refused, so ours are github-actions[bot]'s.
    let (outcome, lines) = upsert(&ctx(&gh, Some(ACTIONS)), &fast(), "report\n", false).await;
    let id = created_id(&outcome.unwrap());
    assert_ne!(id, theirs);
    assert_eq!(paths(&gh.writes()), ["POST /repos/acme/chaos/issues/7/comments"], "mallory's comment is not touched");
    assert_eq!(gh.comment(theirs).unwrap().body, format!("{MARKER}\nnot yours\n"));
    assert_eq!(gh.comment(id).unwrap().login, ACTIONS_BOT);
    assert!(lines.iter().any(|l| l.contains("cannot call GET /user") && l.contains(ACTIONS_BOT)), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("1 comment(s)") && l.contains("leaving them alone")), "{lines:?}");

    // Run again: now it updates its own and still leaves mallory's alone.
    let (outcome, _) = upsert(&ctx(&gh, Some(ACTIONS)), &fast(), "report 2\n", false).await;
    assert!(matches!(outcome.unwrap(), CommentOutcome::Updated { id: u, .. } if u == id));
    assert!(gh.writes().iter().all(|r| !r.path.ends_with(&format!("/{theirs}"))));
}

#[tokio::test]
async fn standin_finds_its_own_comment_on_page_two() {
    let gh = StandIn::start().await;
    for i in 0..120 {
        let body = if i % 10 == 0 { format!("{MARKER}\nsomeone else's\n") } else { format!("comment {i}") };
        gh.seed(if i % 2 == 0 { "bob" } else { "carol" }, &body);
    }
    let own = gh.seed("alice", &format!("{MARKER}\nold\n"));
    for i in 0..15 {
        gh.seed("bob", &format!("later comment {i}"));
    }
    let (outcome, _) = upsert(&ctx(&gh, Some(PAT)), &fast(), "new\n", false).await;
    assert!(matches!(outcome.unwrap(), CommentOutcome::Updated { id, .. } if id == own));
    let gets: Vec<String> = paths(&gh.requests()).into_iter().filter(|p| p.contains("/comments?")).collect();
    assert_eq!(
        gets,
        [
            "GET /repos/acme/chaos/issues/7/comments?per_page=100&page=1",
            "GET /repos/acme/chaos/issues/7/comments?per_page=100&page=2",
        ]
    );
    assert_eq!(paths(&gh.writes()), [format!("PATCH /repos/acme/chaos/issues/comments/{own}")]);
    assert_eq!(gh.comment(own).unwrap().body, format!("{MARKER}\nnew\n"));
}

#[tokio::test]
async fn standin_deletes_duplicates_it_owns_keeping_the_newest() {
    let gh = StandIn::start().await;
    let a = gh.seed("alice", &format!("{MARKER}\nfirst\n"));
    let theirs = gh.seed("bob", &format!("{MARKER}\nbob's\n"));
    let b = gh.seed("alice", &format!("{MARKER}\nsecond\n"));
    let c = gh.seed("alice", &format!("{MARKER}\nthird\n"));
    let (outcome, _) = upsert(&ctx(&gh, Some(PAT)), &fast(), "latest\n", true).await;
    assert_eq!(
        outcome.unwrap(),
        CommentOutcome::Updated {
            id: c,
            url: Some(format!("https://github.com/acme/chaos/pull/7#issuecomment-{c}")),
            deleted: vec![a, b],
        }
    );
    assert_eq!(
        paths(&gh.writes()),
        [
            format!("PATCH /repos/acme/chaos/issues/comments/{c}"),
            format!("DELETE /repos/acme/chaos/issues/comments/{a}"),
            format!("DELETE /repos/acme/chaos/issues/comments/{b}"),
        ]
    );
    let left: Vec<u64> = gh.comments().iter().map(|x| x.id).collect();
    assert_eq!(left, [theirs, c]);
}

#[tokio::test]
async fn standin_retries_a_secondary_rate_limit_without_retry_after() {
    let gh = StandIn::start().await;
    gh.script(
        "POST",
        "/repos/acme/chaos/issues/7/comments",
        403,
        &[],
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
    );
    let (outcome, lines) = upsert(&ctx(&gh, Some(PAT)), &fast(), "report\n", true).await;
    created_id(&outcome.unwrap());
    assert_eq!(paths(&gh.writes()), ["POST /repos/acme/chaos/issues/7/comments"; 2], "retried once");
    assert_eq!(gh.comments().len(), 1);
    let retry = lines.iter().find(|l| l.contains("retrying")).expect("the retry is printed");
    assert!(retry.contains("create a comment on acme/chaos#7") && retry.contains("403"), "{retry}");
    assert!(retry.contains("secondary rate limit") && retry.contains("attempt 2 of 4"), "{retry}");
}

#[tokio::test]
async fn standin_honours_retry_after_on_429() {
    let gh = StandIn::start().await;
    gh.script("GET", "/repos/acme/chaos/issues/7/comments", 429, &[("retry-after", "1")], "Too Many Requests");
    let started = Instant::now();
    let (outcome, lines) = upsert(&ctx(&gh, Some(PAT)), &fast(), "report\n", true).await;
    created_id(&outcome.unwrap());
    // The computed backoff is 10 ms; only Retry-After explains a wait of a second.
    assert!(started.elapsed() >= Duration::from_secs(1), "waited {:?}", started.elapsed());
    let lists = gh.requests().iter().filter(|r| r.method == "GET" && r.path.contains("/comments?")).count();
    assert_eq!(lists, 2);
    assert!(lines.iter().any(|l| l.contains("429") && l.contains("retrying in 1s") && l.contains("as GitHub asked")));
}

#[tokio::test]
async fn standin_server_errors_give_up_after_the_attempts_with_the_status() {
    let gh = StandIn::start().await;
    for _ in 0..4 {
        gh.script("GET", "/repos/acme/chaos/issues/7/comments", 502, &[], "Server Error");
    }
    let (outcome, lines) = upsert(&ctx(&gh, Some(PAT)), &fast(), "report\n", true).await;
    match outcome.unwrap_err() {
        CommentError::Status { status: 502, attempts: 4, .. } => {}
        other => panic!("expected a 502 after 4 attempts, got {other}"),
    }
    assert_eq!(lines.iter().filter(|l| l.contains("retrying")).count(), 3);
    assert!(gh.writes().is_empty());
}

#[tokio::test]
async fn standin_a_post_that_failed_but_landed_leaves_one_comment() {
    let gh = StandIn::start().await;
    // The first POST creates a comment but answers 502; the retry creates a second.
    gh.script_full("POST", "/repos/acme/chaos/issues/7/comments", 502, &[], "Bad Gateway", true);
    let (outcome, _) = upsert(&ctx(&gh, Some(PAT)), &fast(), "report\n", true).await;
    let outcome = outcome.unwrap();
    let CommentOutcome::Created { id, deleted, .. } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(deleted.len(), 1);
    assert_eq!(gh.comments().iter().map(|c| c.id).collect::<Vec<_>>(), [*id], "only the newest is left");
}

#[tokio::test]
async fn standin_read_only_token_is_skipped_with_a_notice_and_exit_0() {
    let gh = StandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.md");
    std::fs::write(&report, "# Chaos report\n100% of writes acknowledged\n").unwrap();
    let summary = dir.path().join("summary.md");
    let out = run_cli(
        &[
            ("GITHUB_TOKEN", READ_ONLY),
            ("GITHUB_REPOSITORY", "acme/chaos"),
            ("GITHUB_API_URL", &gh.url()),
            ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
        ],
        &["comment", "--report", report.to_str().unwrap(), "--pr", "7", "--failed"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    let notice = stdout.lines().find(|l| l.starts_with("::notice::")).expect("a ::notice:: line");
    assert!(notice.contains("403 Resource not accessible by integration"), "{notice}");
    assert!(notice.contains("workflow_run") && notice.contains("job summary"), "{notice}");
    assert_eq!(paths(&gh.writes()), ["POST /repos/acme/chaos/issues/7/comments"]);
    assert!(gh.comments().is_empty());
    assert_eq!(std::fs::read_to_string(&summary).unwrap(), "# Chaos report\n100% of writes acknowledged\n\n");
}

#[tokio::test]
async fn standin_cli_exits_2_when_github_keeps_failing() {
    let gh = StandIn::start().await;
    for _ in 0..2 {
        gh.script("GET", "/repos/acme/chaos/issues/7/comments", 503, &[], "Service Unavailable");
    }
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.md");
    std::fs::write(&report, "# r\n").unwrap();
    let args =
        ["comment", "--report", report.to_str().unwrap(), "--pr", "7", "--attempts", "2", "--max-backoff", "10ms"];
    let out =
        run_cli(&[("GITHUB_TOKEN", PAT), ("GITHUB_REPOSITORY", "acme/chaos"), ("GITHUB_API_URL", &gh.url())], &args)
            .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("GitHub answered 503 after 2 attempt(s)"), "{stderr}");
}

#[tokio::test]
async fn standin_no_token_fork_or_no_pull_request_skip_without_any_request() {
    let gh = StandIn::start().await;
    let check = |ctx: GithubContext, expected: SkipReason| async move {
        let (outcome, _) = upsert(&ctx, &fast(), "report\n", true).await;
        assert_eq!(outcome.unwrap(), CommentOutcome::Skipped { reason: expected });
    };
    check(ctx(&gh, None), SkipReason::NoToken).await;
    check(GithubContext { fork: true, ..ctx(&gh, Some(PAT)) }, SkipReason::ForkPullRequest).await;
    check(GithubContext { pr: None, ..ctx(&gh, Some(PAT)) }, SkipReason::NotAPullRequest).await;
    let never = CommentConfig { mode: Mode::Never, ..fast() };
    let (outcome, _) = upsert(&ctx(&gh, Some(PAT)), &never, "report\n", true).await;
    assert_eq!(outcome.unwrap(), CommentOutcome::Skipped { reason: SkipReason::Disabled });
    assert!(gh.requests().is_empty(), "{:?}", paths(&gh.requests()));
}

#[tokio::test]
async fn standin_over_limit_body_is_shrunk_under_65536() {
    let gh = StandIn::start().await;
    let report: String = (0..4000).map(|i| format!("| scenario-{i:05} | PASS | {} |\n", "x".repeat(30))).collect();
    assert!(report.len() > 200_000);
    let (outcome, _) = upsert(&ctx(&gh, Some(PAT)), &fast(), &report, true).await;
    created_id(&outcome.unwrap());
    let posted = gh.writes()[0].json()["body"].as_str().unwrap().to_string();
    assert!(posted.len() <= GITHUB_COMMENT_LIMIT, "{} bytes", posted.len());
    assert!(posted.starts_with(&format!("{MARKER}\n| scenario-00000 |")));
    assert!(posted.ends_with(&notice(GITHUB_COMMENT_LIMIT - MARKER.len() - 1)), "ends with the truncation notice");
    assert!(posted.len() > GITHUB_COMMENT_LIMIT - 1000, "keeps as much as fits");
}

#[tokio::test]
async fn standin_on_failure_mode_with_a_passing_run_and_no_comment_writes_nothing() {
    let gh = StandIn::start().await;
    let cfg = CommentConfig { mode: Mode::OnFailure, ..fast() };
    let (outcome, _) = upsert(&ctx(&gh, Some(PAT)), &cfg, "all passed\n", false).await;
    assert_eq!(outcome.unwrap(), CommentOutcome::Skipped { reason: SkipReason::PassedWithoutComment });
    assert!(gh.writes().is_empty(), "{:?}", paths(&gh.writes()));
    assert!(gh.comments().is_empty());
}

#[tokio::test]
async fn standin_on_failure_mode_with_a_passing_run_updates_an_earlier_failure() {
    let gh = StandIn::start().await;
    let own = gh.seed("alice", &format!("{MARKER}\nFAILED: lost writes\n"));
    let cfg = CommentConfig { mode: Mode::OnFailure, ..fast() };
    let (outcome, _) = upsert(&ctx(&gh, Some(PAT)), &cfg, "all passed now\n", false).await;
    assert!(matches!(outcome.unwrap(), CommentOutcome::Updated { id, .. } if id == own));
    assert_eq!(gh.comment(own).unwrap().body, format!("{MARKER}\nall passed now\n"), "no stale failure");
}

#[tokio::test]
async fn standin_marker_ids_own_separate_comments() {
    let gh = StandIn::start().await;
    let with_id = |id: &str| CommentConfig { marker_id: Some(id.to_string()), ..fast() };
    let (a, _) = upsert(&ctx(&gh, Some(PAT)), &with_id("linux"), "linux report\n", true).await;
    let (b, _) = upsert(&ctx(&gh, Some(PAT)), &with_id("macos"), "macos report\n", true).await;
    let (a, b) = (created_id(&a.unwrap()), created_id(&b.unwrap()));
    assert_ne!(a, b);
    let (again, _) = upsert(&ctx(&gh, Some(PAT)), &with_id("linux"), "linux report 2\n", true).await;
    assert!(matches!(again.unwrap(), CommentOutcome::Updated { id, ref deleted, .. } if id == a && deleted.is_empty()));
    assert_eq!(gh.comment(a).unwrap().body, "<!-- chronik-chaos:report:linux -->\nlinux report 2\n");
    assert_eq!(gh.comment(b).unwrap().body, "<!-- chronik-chaos:report:macos -->\nmacos report\n");
}

#[tokio::test]
async fn standin_a_rejected_token_is_an_error_not_a_skip() {
    let gh = StandIn::start().await;
    let (outcome, _) = upsert(&ctx(&gh, Some("expired-token")), &fast(), "report\n", true).await;
    let err = outcome.unwrap_err();
    assert!(matches!(err, CommentError::BadCredentials { status: 401, .. }), "{err}");
    assert!(err.to_string().contains("check GITHUB_TOKEN or --token"), "{err}");
    assert_eq!(paths(&gh.requests()), ["GET /user"]);
}

/// Runs the `chronik-chaos` binary with only `env` set; returns its output.
async fn run_cli(env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chronik-chaos"));
    cmd.env_clear().args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Blocking, on another thread: the stand-in serves the binary from this runtime.
    tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
}

/// Against real GitHub: `GITHUB_LIVE_TEST_PR=owner/repo#123` and `GITHUB_TOKEN` (with
/// `pull-requests: write`). Creates or updates a comment with marker id `live-test`, then updates
/// it again and checks that the same comment was edited.
#[tokio::test]
#[ignore = "needs GITHUB_LIVE_TEST_PR (owner/repo#123) and GITHUB_TOKEN; .ci/run runs it when both are set"]
async fn github_live_upserts_one_comment_on_a_real_pull_request() {
    let target = std::env::var("GITHUB_LIVE_TEST_PR").ok().filter(|v| !v.is_empty());
    let token = std::env::var("GITHUB_TOKEN").ok().filter(|v| !v.is_empty());
    let (Some(target), Some(token)) = (target, token) else {
        panic!("GITHUB_LIVE_TEST_PR (owner/repo#123) and GITHUB_TOKEN must both be set");
    };
    let (repo, pr) = target.split_once('#').expect("GITHUB_LIVE_TEST_PR is owner/repo#123");
    let ctx = GithubContext {
        token: Some(Token::new(token)),
        repo: Some(repo.parse().unwrap()),
        pr: Some(pr.parse().unwrap()),
        api_url: std::env::var("GITHUB_API_URL").unwrap_or_else(|_| chronik_chaos::github::DEFAULT_API_URL.into()),
        fork: false,
        event_name: None,
    };
    let cfg = CommentConfig { marker_id: Some("live-test".into()), ..CommentConfig::default() };
    let (first, _) = upsert(&ctx, &cfg, "chronik-chaos live test: first write\n", true).await;
    let first = match first.unwrap() {
        CommentOutcome::Created { id, .. } | CommentOutcome::Updated { id, .. } => id,
        CommentOutcome::Skipped { reason } => panic!("skipped: {reason}"),
    };
    let (second, _) = upsert(&ctx, &cfg, "chronik-chaos live test: second write\n", true).await;
    assert!(matches!(second.unwrap(), CommentOutcome::Updated { id, .. } if id == first));
}
