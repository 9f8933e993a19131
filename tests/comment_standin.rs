//! The sticky pull-request comment (`github::comment::upsert`, `chronik-chaos comment` and the
//! composite action's `scripts/action-run.sh`) against a **stand-in for the GitHub REST API**: a
//! local hyper server that keeps issue comments in memory, knows a few tokens (a personal token,
//! an Actions token and two GitHub App tokens that cannot call `GET /user`, one of which GraphQL's
//! `viewer` does not name either, a read-only token), answers GraphQL's `viewer`, paginates with
//! `Link` headers, lets a token that can write edit anyone's comment (as GitHub lets a
//! collaborator), refuses bodies over 65,536 characters as GitHub does (422), can be told to answer
//! the next matching request with a scripted error, and records every request (method, path with
//! query, body, `Authorization`) so that tests assert on what was sent. For the base-branch
//! comparison it also keeps workflow runs with their artifacts (runs filtered by workflow, branch
//! and conclusion, newest first; artifacts by name; an artifact's zip answered with a 302 to a
//! second server standing in for GitHub's artifact storage, which refuses a request carrying a
//! token and records what it was sent). Every test named `standin_*` runs against it; `action_*`
//! tests run the action's script and read `action.yml`.
//! No test here needs the network.
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
    self, compose, CommentConfig, CommentError, CommentOutcome, Mode, RetryPolicy, SkipReason, ACTIONS_BOT,
    MAX_COMMENT_ID_LEN, MAX_ENVELOPE,
};
use chronik_chaos::github::{baseline, GithubContext, Repo, Token};
use chronik_chaos::report::fit::{notice, GITHUB_COMMENT_LIMIT, REPORT_BUDGET};
use chronik_chaos::report::markdown::{render_at, Detail};
use chronik_chaos::report::{render_all, RenderOptions};
use chronik_chaos::results::{Results, ScenarioResult};
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
/// A GitHub App's installation token: `GET /user` is refused; GraphQL's viewer is `chaos-app[bot]`.
const APP: &str = "ghs-app";
const APP_BOT: &str = "chaos-app[bot]";
/// Another App's token, whose login neither `GET /user` nor GraphQL tells: `quiet-app[bot]`.
const QUIET_APP: &str = "ghs-quiet-app";
const QUIET_BOT: &str = "quiet-app[bot]";

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

/// A workflow run, for the base-branch lookup.
#[derive(Debug, Clone)]
struct StoredRun {
    id: u64,
    workflow: &'static str,
    branch: String,
    conclusion: &'static str,
    artifacts: Vec<StoredArtifact>,
}

#[derive(Debug, Clone)]
struct StoredArtifact {
    id: u64,
    name: String,
    expired: bool,
    zip: Vec<u8>,
}

#[derive(Default)]
struct State {
    comments: Vec<StoredComment>,
    next_id: u64,
    requests: Vec<Recorded>,
    scripted: VecDeque<Scripted>,
    runs: Vec<StoredRun>,
    /// The stand-in artifact storage: where an artifact's zip redirects to.
    storage: Option<SocketAddr>,
    storage_requests: Vec<Recorded>,
}

struct StandIn {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl StandIn {
    async fn start() -> StandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let storage = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let state = Arc::new(Mutex::new(State {
            next_id: 1000,
            storage: Some(storage.local_addr().unwrap()),
            ..State::default()
        }));
        let in_storage = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = storage.accept().await {
                let state = in_storage.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle_storage(state.clone(), req));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
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

    /// Requests that change something (anything but GET, and but GraphQL's query for the viewer).
    fn writes(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.method != "GET" && r.path != "/graphql").collect()
    }

    fn comments(&self) -> Vec<StoredComment> {
        self.state.lock().unwrap().comments.clone()
    }

    fn comment(&self, id: u64) -> Option<StoredComment> {
        self.comments().into_iter().find(|c| c.id == id)
    }

    /// Adds a run of `workflow` on `branch` with `conclusion` and its artifacts.
    fn add_run(
        &self,
        id: u64,
        workflow: &'static str,
        branch: &str,
        conclusion: &'static str,
        artifacts: Vec<StoredArtifact>,
    ) {
        let run = StoredRun { id, workflow, branch: branch.to_string(), conclusion, artifacts };
        self.state.lock().unwrap().runs.push(run);
    }

    fn storage_requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().storage_requests.clone()
    }
}

/// The stand-in artifact storage: serves `/artifact-ID.zip?sig=…`, and like a signed storage URL
/// refuses a request that carries an `Authorization` header (a token must never reach it).
async fn handle_storage(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let path = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut s = state.lock().unwrap();
    let method = req.method().to_string();
    s.storage_requests.push(Recorded { method, path: path.clone(), body: String::new(), auth: auth.clone() });
    if auth.is_some() {
        return Ok(error(400, "storage refuses a request that carries Authorization"));
    }
    let id = path
        .strip_prefix("/artifact-")
        .and_then(|p| p.split_once(".zip?sig="))
        .and_then(|(id, _)| id.parse::<u64>().ok());
    let zip = s.runs.iter().flat_map(|r| &r.artifacts).find(|a| Some(a.id) == id).map(|a| a.zip.clone());
    Ok(match zip {
        None => error(404, "The specified blob does not exist."),
        Some(zip) => {
            let mut r = Response::new(Full::new(Bytes::from(zip)));
            r.headers_mut().insert("content-type", "application/zip".parse().unwrap());
            r
        }
    })
}

/// A query parameter's value, percent-decoded.
fn query_value(query: &str, name: &str) -> Option<String> {
    let raw = query.split('&').find_map(|kv| kv.strip_prefix(&format!("{name}=")[..]))?;
    let bytes = raw.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            out.push(u8::from_str_radix(&raw[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(String::from_utf8(out).unwrap())
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
        Some(APP) => APP_BOT,
        Some(QUIET_APP) => QUIET_BOT,
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
        ("POST", ["graphql"]) if login == QUIET_BOT => error(403, "Resource not accessible by integration"),
        ("POST", ["graphql"]) => {
            let query = serde_json::from_str::<Value>(body).ok().and_then(|v| v["query"].as_str().map(str::to_string));
            match query {
                Some(q) if q.contains("viewer") && q.contains("login") => {
                    reply(200, json!({ "data": { "viewer": { "login": login } } }))
                }
                _ => reply(200, json!({ "errors": [{ "message": "unsupported query" }] })),
            }
        }
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
            // Like GitHub, anyone who can write here may edit anyone's comment: only the client
            // keeps its hands off comments that are not its own.
            match s.comments.iter_mut().find(|c| c.id == id) {
                None => error(404, "Not Found"),
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
                Some(i) => {
                    s.comments.remove(i);
                    let mut r = Response::new(Full::new(Bytes::new()));
                    *r.status_mut() = StatusCode::NO_CONTENT;
                    r
                }
            }
        }
        ("GET", ["repos", "acme", "chaos", "actions", "workflows", workflow, "runs"]) => {
            if *workflow != "chaos.yml" {
                return error(404, "Not Found");
            }
            let branch = query_value(query, "branch");
            let status = query_value(query, "status");
            let mut runs: Vec<&StoredRun> = s
                .runs
                .iter()
                .filter(|r| r.workflow == *workflow)
                .filter(|r| branch.as_deref().is_none_or(|b| b == r.branch))
                .filter(|r| status.as_deref().is_none_or(|c| c == r.conclusion))
                .collect();
            runs.sort_by_key(|r| std::cmp::Reverse(r.id));
            let items: Vec<Value> = runs
                .iter()
                .take(param("per_page").unwrap_or(30).min(100))
                .map(|r| {
                    json!({ "id": r.id, "head_branch": r.branch, "status": "completed", "conclusion": r.conclusion,
                            "html_url": format!("https://github.com/acme/chaos/actions/runs/{}", r.id) })
                })
                .collect();
            reply(200, json!({ "total_count": runs.len(), "workflow_runs": items }))
        }
        ("GET", ["repos", "acme", "chaos", "actions", "runs", id, "artifacts"]) => {
            let Some(run) = s.runs.iter().find(|r| r.id.to_string() == *id) else { return error(404, "Not Found") };
            let name = query_value(query, "name");
            let items: Vec<Value> = run
                .artifacts
                .iter()
                .filter(|a| name.as_deref().is_none_or(|n| n == a.name))
                .map(|a| {
                    json!({ "id": a.id, "name": a.name, "size_in_bytes": a.zip.len(), "expired": a.expired,
                            "archive_download_url": format!("http://{addr}/repos/acme/chaos/actions/artifacts/{}/zip", a.id) })
                })
                .collect();
            reply(200, json!({ "total_count": items.len(), "artifacts": items }))
        }
        ("GET", ["repos", "acme", "chaos", "actions", "artifacts", id, "zip"]) => {
            let artifact = s.runs.iter().flat_map(|r| &r.artifacts).find(|a| a.id.to_string() == *id);
            match artifact {
                None => error(404, "Not Found"),
                Some(a) if a.expired => error(410, "Artifact has expired"),
                Some(a) => {
                    let storage = s.storage.expect("the storage server");
                    let mut r = Response::new(Full::new(Bytes::new()));
                    *r.status_mut() = StatusCode::FOUND;
                    let location = format!("http://{storage}/artifact-{}.zip?sig=short-lived", a.id);
                    r.headers_mut().insert("location", location.parse().unwrap());
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
    // An Actions token: GET /user is refused, GraphQL names it github-actions[bot].
    let (outcome, lines) = upsert(&ctx(&gh, Some(ACTIONS)), &fast(), "report\n", false).await;
    let id = created_id(&outcome.unwrap());
    assert_ne!(id, theirs);
    assert_eq!(paths(&gh.writes()), ["POST /repos/acme/chaos/issues/7/comments"], "mallory's comment is not touched");
    assert_eq!(gh.comment(theirs).unwrap().body, format!("{MARKER}\nnot yours\n"));
    assert_eq!(gh.comment(id).unwrap().login, ACTIONS_BOT);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("cannot call GET /user") && l.contains(&format!("GraphQL names it {ACTIONS_BOT}"))),
        "{lines:?}"
    );
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
    let with_id = |id: &str| CommentConfig { comment_id: Some(id.to_string()), ..fast() };
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

// ---------------------------------------------------------------------------------------------
// Several jobs, one pull request (a matrix, two workflows)

#[tokio::test]
async fn standin_matrix_legs_racing_each_keep_their_own_comment() {
    let gh = StandIn::start().await;
    let leg = |id: &str| CommentConfig { comment_id: Some(id.to_string()), ..fast() };
    let (a, b) = (leg("chaos-chaos-os-ubuntu"), leg("chaos-chaos-os-macos"));
    let actions = ctx(&gh, Some(ACTIONS));
    // Both legs at once, same author, as a matrix runs them.
    let ((first_a, _), (first_b, _)) =
        tokio::join!(upsert(&actions, &a, "ubuntu 1\n", true), upsert(&actions, &b, "macos 1\n", true));
    let (id_a, id_b) = (created_id(&first_a.unwrap()), created_id(&first_b.unwrap()));
    let ((again_a, _), (again_b, _)) =
        tokio::join!(upsert(&actions, &a, "ubuntu 2\n", true), upsert(&actions, &b, "macos 2\n", true));
    for (outcome, id) in [(again_a.unwrap(), id_a), (again_b.unwrap(), id_b)] {
        assert!(
            matches!(&outcome, CommentOutcome::Updated { id: u, deleted, .. } if *u == id && deleted.is_empty()),
            "{outcome:?}"
        );
    }
    assert!(gh.writes().iter().all(|r| r.method != "DELETE"), "neither leg deletes the other's comment");
    assert_eq!(gh.comments().len(), 2);
    assert_eq!(gh.comment(id_a).unwrap().body, "<!-- chronik-chaos:report:chaos-chaos-os-ubuntu -->\nubuntu 2\n");
    assert_eq!(gh.comment(id_b).unwrap().body, "<!-- chronik-chaos:report:chaos-chaos-os-macos -->\nmacos 2\n");
}

// ---------------------------------------------------------------------------------------------
// GitHub App tokens

#[tokio::test]
async fn standin_a_github_app_token_finds_its_comment_through_graphql() {
    let gh = StandIn::start().await;
    let ours = gh.seed(APP_BOT, &format!("{MARKER}\nold\n"));
    // Newer comments with the marker by a person and by another bot: neither is ours.
    let person = gh.seed("mallory", &format!("{MARKER}\nmallory's\n"));
    let other_bot = gh.seed(ACTIONS_BOT, &format!("{MARKER}\nfrom an older setup\n"));
    for round in 1..=2 {
        let (outcome, lines) = upsert(&ctx(&gh, Some(APP)), &fast(), &format!("round {round}\n"), true).await;
        assert!(matches!(outcome.unwrap(), CommentOutcome::Updated { id, .. } if id == ours), "round {round}");
        assert!(lines.iter().any(|l| l.contains(&format!("GraphQL names it {APP_BOT}"))), "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("2 comment(s)") && l.contains("leaving them alone")), "{lines:?}");
    }
    assert_eq!(
        paths(&gh.writes()),
        [
            format!("PATCH /repos/acme/chaos/issues/comments/{ours}"),
            format!("PATCH /repos/acme/chaos/issues/comments/{ours}")
        ],
        "no new comment, nothing else edited"
    );
    let graphql: Vec<Recorded> = gh.requests().into_iter().filter(|r| r.path == "/graphql").collect();
    assert_eq!(graphql.len(), 2, "one viewer query per run, after GET /user was refused");
    assert!(graphql[0].json()["query"].as_str().unwrap().contains("viewer"));
    assert_eq!(gh.comment(ours).unwrap().body, format!("{MARKER}\nround 2\n"));
    assert_eq!(gh.comment(person).unwrap().body, format!("{MARKER}\nmallory's\n"));
    assert_eq!(gh.comment(other_bot).unwrap().body, format!("{MARKER}\nfrom an older setup\n"));
}

#[tokio::test]
async fn standin_an_app_nobody_names_keeps_one_comment_and_never_edits_a_person() {
    let gh = StandIn::start().await;
    let first_person = gh.seed("mallory", &format!("{MARKER}\ncopied by hand\n"));
    // First run: no bot has the marker yet, so a comment is created.
    let (outcome, lines) = upsert(&ctx(&gh, Some(QUIET_APP)), &fast(), "run 1\n", true).await;
    let ours = created_id(&outcome.unwrap());
    assert_eq!(gh.comment(ours).unwrap().login, QUIET_BOT);
    assert!(
        lines.iter().any(|l| l.contains("GraphQL does not name it") && l.contains("never a person's")),
        "{lines:?}"
    );
    // A person posts the marker after ours: newer, but not a bot's.
    let second_person = gh.seed("trudy", &format!("{MARKER}\nnewer, by a person\n"));
    for run in 2..=3 {
        let (outcome, lines) = upsert(&ctx(&gh, Some(QUIET_APP)), &fast(), &format!("run {run}\n"), true).await;
        assert!(matches!(outcome.unwrap(), CommentOutcome::Updated { id, .. } if id == ours), "run {run}");
        assert!(lines.iter().any(|l| l.contains(&format!("taking {QUIET_BOT}'s comment(s)"))), "{lines:?}");
    }
    assert_eq!(gh.comments().len(), 3, "one comment of ours, every run");
    let touched: Vec<String> = gh.writes().iter().map(|r| r.path.clone()).collect();
    for person in [first_person, second_person] {
        assert!(!touched.iter().any(|p| p.ends_with(&format!("/{person}"))), "{touched:?}");
    }
    assert_eq!(gh.comment(second_person).unwrap().body, format!("{MARKER}\nnewer, by a person\n"));
}

#[tokio::test]
async fn standin_an_unnamed_app_refused_another_bots_comment_creates_its_own() {
    let gh = StandIn::start().await;
    let actions_comment = gh.seed(ACTIONS_BOT, &format!("{MARKER}\nby the Actions token\n"));
    // The newest bot comment is the likeliest ours; GitHub says no.
    gh.script("PATCH", &format!("/repos/acme/chaos/issues/comments/{actions_comment}"), 403, &[], "Forbidden");
    let (outcome, lines) = upsert(&ctx(&gh, Some(QUIET_APP)), &fast(), "mine\n", true).await;
    let ours = created_id(&outcome.unwrap());
    assert!(lines.iter().any(|l| l.contains("so it is not ours; creating our own")), "{lines:?}");
    // Next run: ours is now the newest bot comment, and the other bot's is left alone.
    let (outcome, _) = upsert(&ctx(&gh, Some(QUIET_APP)), &fast(), "mine again\n", true).await;
    assert!(
        matches!(outcome.unwrap(), CommentOutcome::Updated { id, ref deleted, .. } if id == ours && deleted.is_empty())
    );
    assert_eq!(gh.comment(actions_comment).unwrap().body, format!("{MARKER}\nby the Actions token\n"));
    assert_eq!(gh.comment(ours).unwrap().body, format!("{MARKER}\nmine again\n"));
}

#[tokio::test]
async fn standin_a_given_comment_author_needs_no_identity_lookup() {
    let gh = StandIn::start().await;
    let ours = gh.seed(APP_BOT, &format!("{MARKER}\nold\n"));
    gh.seed(ACTIONS_BOT, &format!("{MARKER}\nnot ours\n"));
    let cfg = CommentConfig { author: Some(APP_BOT.to_string()), ..fast() };
    let (outcome, _) = upsert(&ctx(&gh, Some(APP)), &cfg, "new\n", true).await;
    assert!(matches!(outcome.unwrap(), CommentOutcome::Updated { id, .. } if id == ours));
    assert_eq!(
        paths(&gh.requests()),
        [
            "GET /repos/acme/chaos/issues/7/comments?per_page=100&page=1".to_string(),
            format!("PATCH /repos/acme/chaos/issues/comments/{ours}"),
        ],
        "no GET /user, no GraphQL"
    );
}

// ---------------------------------------------------------------------------------------------
// Size: everything added around the report is counted

#[tokio::test]
async fn standin_a_report_filling_the_room_the_longest_marker_leaves_is_posted_whole() {
    let gh = StandIn::start().await;
    let id = "x".repeat(MAX_COMMENT_ID_LEN);
    let cfg = CommentConfig { comment_id: Some(id.clone()), ..fast() };
    let room = GITHUB_COMMENT_LIMIT - MAX_ENVELOPE;
    let line = "| scenario | PASS | 1234 acknowledged |\n";
    let mut report = line.repeat(room / line.len());
    report.push_str(&"y".repeat(room - report.len() - 1));
    report.push('\n');
    assert_eq!(report.len(), room);
    let (outcome, _) = upsert(&ctx(&gh, Some(PAT)), &cfg, &report, true).await;
    created_id(&outcome.unwrap());
    let posted = gh.writes()[0].json()["body"].as_str().unwrap().to_string();
    assert_eq!(posted, format!("<!-- chronik-chaos:report:{id} -->\n{report}"), "whole, not cut");
    assert_eq!(posted.len(), GITHUB_COMMENT_LIMIT, "exactly at GitHub's limit, which the stand-in accepts");
    // One byte more and the report is cut to keep the marker.
    let (outcome, _) = upsert(&ctx(&gh, Some(PAT)), &cfg, &format!("z{report}"), true).await;
    assert!(matches!(outcome.unwrap(), CommentOutcome::Updated { .. }));
    let posted = gh.writes()[1].json()["body"].as_str().unwrap().to_string();
    assert!(posted.len() <= GITHUB_COMMENT_LIMIT && posted.ends_with(&notice(room)), "cut with a notice");
}

/// Results whose full rendering is longer than `above` bytes and at most `at_most`: the all-pass
/// fixture with more passing scenarios, the last one's description (else name) padded.
fn results_rendering_between(above: usize, at_most: usize) -> Results {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results-all-pass.json");
    let mut r = Results::read(&fixture).unwrap();
    let template = r.scenarios[0].clone();
    let full = |r: &Results| render_at(r, &RenderOptions::default(), Detail::Full).len();
    while full(&r) < above - 4_000 {
        let mut s = template.clone();
        s.name = format!("extra-{}", r.scenarios.len());
        r.scenarios.push(s);
    }
    type Pad = fn(&mut ScenarioResult, usize);
    let pads: [Pad; 2] = [
        |s, n| s.description = format!("padded {}", "x".repeat(n)),
        |s, n| s.name = format!("padded-{}", "x".repeat(n)),
    ];
    for pad in pads {
        let at = |n: usize| {
            let mut r = r.clone();
            pad(r.scenarios.last_mut().unwrap(), n);
            r
        };
        // The shortest padding that passes `above` (the rendering grows with the padding).
        let (mut lo, mut hi) = (0usize, 8_000usize);
        if full(&at(hi)) <= above {
            continue;
        }
        while lo < hi {
            let mid = (lo + hi) / 2;
            if full(&at(mid)) > above {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let padded = at(lo);
        if full(&padded) <= at_most {
            return padded;
        }
    }
    panic!("no padding renders the results between {above} and {at_most} bytes");
}

#[tokio::test]
async fn standin_a_report_near_the_limit_drops_a_detail_level_instead_of_being_cut() {
    let gh = StandIn::start().await;
    let cfg = CommentConfig { comment_id: Some("chaos-chaos".into()), ..fast() };
    let head = "<!-- chronik-chaos:report:chaos-chaos -->\n";
    // The full rendering fits GitHub's limit on its own, not with the marker before it.
    let r = results_rendering_between(GITHUB_COMMENT_LIMIT - head.len(), GITHUB_COMMENT_LIMIT);
    let full = render_at(&r, &RenderOptions::default(), Detail::Full);
    let cut = compose(head.trim_end(), &full);
    assert!(cut.ends_with(&notice(GITHUB_COMMENT_LIMIT - head.len())), "fitted to the raw limit, it would be cut");
    // What the run writes as report.md is chosen against the budget: a shorter level of detail.
    let out = tempfile::tempdir().unwrap();
    let rendered = render_all(&r, out.path(), &RenderOptions::default()).unwrap();
    assert!(rendered.markdown.len() <= REPORT_BUDGET, "{} bytes", rendered.markdown.len());
    assert_ne!(rendered.markdown, full, "a level of detail was dropped");
    assert!(!rendered.markdown.contains("This report was cut"));
    let (outcome, _) = upsert(&ctx(&gh, Some(PAT)), &cfg, &rendered.markdown, true).await;
    created_id(&outcome.unwrap());
    let posted = gh.writes()[0].json()["body"].as_str().unwrap().to_string();
    assert_eq!(posted, format!("{head}{}", rendered.markdown), "posted whole, not cut");
}

// ---------------------------------------------------------------------------------------------
// Issue references from results text

#[tokio::test]
async fn standin_issue_references_in_results_text_do_not_link() {
    let gh = StandIn::start().await;
    let report = "# ❌ Chronik resilience: FAIL\n\n### ❌ fix-#12 — FAIL\n\n- lost writes after acme/chaos#3 (GH-4)\n\
                  - `#6` in code\n\n````text\nlog line #5\n````\n";
    let (outcome, _) = upsert(&ctx(&gh, Some(PAT)), &fast(), report, true).await;
    created_id(&outcome.unwrap());
    let posted = gh.writes()[0].json()["body"].as_str().unwrap().to_string();
    let wj = '\u{2060}';
    assert_eq!(
        posted,
        format!(
            "{MARKER}\n# ❌ Chronik resilience: FAIL\n\n### ❌ fix-#{wj}12 — FAIL\n\n- lost writes after acme/chaos#{wj}3 (GH-{wj}4)\n\
             - `#6` in code\n\n````text\nlog line #5\n````\n"
        )
    );
}

// ---------------------------------------------------------------------------------------------
// The composite action: scripts/action-run.sh and action.yml

// ---------------------------------------------------------------------------------------------
// The base branch's results (github::baseline, `chronik-chaos baseline`)

const ARTIFACT: &str = "chronik-chaos-chaos";
const ALL_PASS: &[u8] = include_bytes!("fixtures/results-all-pass.json");
const MIXED: &[u8] = include_bytes!("fixtures/results-mixed.json");

/// An artifact's zip: a report and, when given, `results.json` at `results_at`.
fn artifact_zip(results: Option<(&str, &[u8])>) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    w.start_file("report.md", opts).unwrap();
    w.write_all(b"# report").unwrap();
    if let Some((at, bytes)) = results {
        w.start_file(at, opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn stored(id: u64, name: &str, expired: bool, results: &[u8]) -> StoredArtifact {
    StoredArtifact { id, name: name.to_string(), expired, zip: artifact_zip(Some(("results.json", results))) }
}

fn baseline_request(standin: &StandIn, token: Option<&str>, base: &str, dir: &std::path::Path) -> baseline::Request {
    baseline::Request {
        api_url: standin.url(),
        token: token.map(Token::new),
        repo: Repo { owner: "acme".into(), name: "chaos".into() },
        base: base.to_string(),
        workflow: "chaos.yml".into(),
        artifact: ARTIFACT.into(),
        dir: dir.to_path_buf(),
        max_runs: baseline::DEFAULT_MAX_RUNS,
    }
}

/// Runs the lookup; returns what it found and the lines it said.
async fn find_baseline(req: &baseline::Request) -> (baseline::Outcome, Vec<String>) {
    let lines = RefCell::new(Vec::new());
    let outcome = baseline::fetch(req, &|l| lines.borrow_mut().push(l.to_string())).await.unwrap();
    (outcome, lines.into_inner())
}

#[tokio::test]
async fn standin_baseline_takes_the_newest_successful_base_run_that_kept_the_artifact() {
    let standin = StandIn::start().await;
    standin.add_run(10, "chaos.yml", "main", "success", vec![stored(100, ARTIFACT, false, ALL_PASS)]);
    standin.add_run(11, "chaos.yml", "main", "failure", vec![stored(110, ARTIFACT, false, MIXED)]);
    standin.add_run(12, "chaos.yml", "main", "success", vec![stored(120, "chronik-chaos-other-job", false, MIXED)]);
    standin.add_run(13, "chaos.yml", "feature", "success", vec![stored(130, ARTIFACT, false, MIXED)]);
    standin.add_run(14, "chaos.yml", "main", "success", vec![stored(140, ARTIFACT, true, MIXED)]);
    standin.add_run(15, "nightly.yml", "main", "success", vec![stored(150, ARTIFACT, false, MIXED)]);
    let dir = tempfile::tempdir().unwrap();
    let (outcome, said) = find_baseline(&baseline_request(&standin, Some(ACTIONS), "main", dir.path())).await;

    let file = dir.path().join("results.json");
    assert_eq!(
        outcome,
        baseline::Outcome::Found {
            run_id: 10,
            run_url: Some("https://github.com/acme/chaos/actions/runs/10".into()),
            path: file.clone()
        }
    );
    assert_eq!(std::fs::read(&file).unwrap(), ALL_PASS, "run 10's results.json, unpacked whole");
    assert_eq!(said, ["passed over newer runs: run 14: its artifact has expired; run 12: no artifact of that name"]);
    assert_eq!(
        paths(&standin.requests()),
        [
            "GET /repos/acme/chaos/actions/workflows/chaos.yml/runs?branch=main&status=success&per_page=10",
            "GET /repos/acme/chaos/actions/runs/14/artifacts?name=chronik-chaos-chaos",
            "GET /repos/acme/chaos/actions/runs/12/artifacts?name=chronik-chaos-chaos",
            "GET /repos/acme/chaos/actions/runs/10/artifacts?name=chronik-chaos-chaos",
            "GET /repos/acme/chaos/actions/artifacts/100/zip",
        ]
    );
    let bearer = format!("Bearer {ACTIONS}");
    assert!(standin.requests().iter().all(|r| r.auth.as_deref() == Some(bearer.as_str())), "{:?}", standin.requests());
    // The redirect was followed to storage, without the token.
    let storage = standin.storage_requests();
    assert_eq!(storage.len(), 1, "{storage:?}");
    assert_eq!(storage[0].path, "/artifact-100.zip?sig=short-lived");
    assert_eq!(storage[0].auth, None, "the token must not reach artifact storage");
}

#[tokio::test]
async fn standin_baseline_encodes_a_branch_with_a_slash() {
    let standin = StandIn::start().await;
    standin.add_run(20, "chaos.yml", "release/2.10", "success", vec![stored(200, ARTIFACT, false, MIXED)]);
    standin.add_run(21, "chaos.yml", "main", "success", vec![stored(210, ARTIFACT, false, ALL_PASS)]);
    let dir = tempfile::tempdir().unwrap();
    let (outcome, _) = find_baseline(&baseline_request(&standin, Some(PAT), "release/2.10", dir.path())).await;
    assert!(matches!(outcome, baseline::Outcome::Found { run_id: 20, .. }), "{outcome:?}");
    assert_eq!(std::fs::read(dir.path().join("results.json")).unwrap(), MIXED);
    assert!(standin.requests()[0].path.contains("?branch=release%2F2.10&"), "{:?}", standin.requests()[0]);
}

#[tokio::test]
async fn standin_baseline_says_in_one_line_why_there_is_no_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let nothing = |o: &baseline::Outcome| match o {
        baseline::Outcome::NoComparison(why) => why.clone(),
        other => panic!("expected no comparison, got {other:?}"),
    };

    // No successful run on the base branch yet (a failing one does not count).
    let standin = StandIn::start().await;
    standin.add_run(1, "chaos.yml", "main", "failure", vec![stored(10, ARTIFACT, false, MIXED)]);
    let (o, _) = find_baseline(&baseline_request(&standin, Some(ACTIONS), "main", dir.path())).await;
    assert_eq!(nothing(&o), "no successful run of chaos.yml on main yet");

    // Every successful run's artifact expired, or was never uploaded (another job's only).
    let standin = StandIn::start().await;
    standin.add_run(5, "chaos.yml", "main", "success", vec![stored(50, ARTIFACT, true, MIXED)]);
    standin.add_run(6, "chaos.yml", "main", "success", vec![stored(60, "other", false, MIXED)]);
    let (o, _) = find_baseline(&baseline_request(&standin, Some(ACTIONS), "main", dir.path())).await;
    assert_eq!(
        nothing(&o),
        "none of the last 2 successful run(s) of chaos.yml on main has artifact chronik-chaos-chaos \
         (run 6: no artifact of that name; run 5: its artifact has expired)"
    );

    // An artifact without results.json at its root, and one whose results.json is not ours.
    let standin = StandIn::start().await;
    let nested = StoredArtifact {
        id: 70,
        name: ARTIFACT.into(),
        expired: false,
        zip: artifact_zip(Some(("out/results.json", ALL_PASS))),
    };
    standin.add_run(7, "chaos.yml", "main", "success", vec![nested]);
    let (o, _) = find_baseline(&baseline_request(&standin, Some(ACTIONS), "main", dir.path())).await;
    assert_eq!(nothing(&o), "artifact chronik-chaos-chaos of run 7: the artifact has no results.json at its root");
    let standin = StandIn::start().await;
    standin.add_run(8, "chaos.yml", "main", "success", vec![stored(80, ARTIFACT, false, b"{\"version\": 99}")]);
    let (o, _) = find_baseline(&baseline_request(&standin, Some(ACTIONS), "main", dir.path())).await;
    assert_eq!(
        nothing(&o),
        "artifact chronik-chaos-chaos of run 8: its results.json has results version 99; this chronik-chaos reads version 1"
    );

    // A token without `actions: read`, and a bad token.
    let standin = StandIn::start().await;
    standin.add_run(9, "chaos.yml", "main", "success", vec![stored(90, ARTIFACT, false, ALL_PASS)]);
    standin.script("GET", "/repos/acme/chaos/actions/workflows/", 403, &[], "Resource not accessible by integration");
    let (o, _) = find_baseline(&baseline_request(&standin, Some(ACTIONS), "main", dir.path())).await;
    assert_eq!(
        nothing(&o),
        "cannot list the runs of chaos.yml on main: GitHub answered 403 Resource not accessible by integration"
    );
    let (o, _) = find_baseline(&baseline_request(&standin, Some("ghs-wrong"), "main", dir.path())).await;
    assert_eq!(nothing(&o), "cannot list the runs of chaos.yml on main: GitHub answered 401 Bad credentials");

    // No token: nothing is asked.
    let before = standin.requests().len();
    let (o, _) = find_baseline(&baseline_request(&standin, None, "main", dir.path())).await;
    assert_eq!(nothing(&o), "no GitHub token (GITHUB_TOKEN or --token) to read the base branch's runs");
    assert_eq!(standin.requests().len(), before);

    assert!(!dir.path().join("results.json").exists(), "no comparison leaves no file");
}

fn script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/action-run.sh")
}

/// Runs `scripts/action-run.sh MODE` with only `env` (and PATH, `extra_path` first); returns its
/// output and what it wrote to GITHUB_OUTPUT, as `name=value` pairs.
async fn run_script(
    mode: &str,
    env: &[(&str, &str)],
    extra_path: Option<&std::path::Path>,
) -> (std::process::Output, Vec<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let outputs = dir.path().join("github-output");
    let mut path = std::env::var("PATH").unwrap_or_default();
    if let Some(p) = extra_path {
        path = format!("{}:{path}", p.display());
    }
    let mut cmd = std::process::Command::new("bash");
    cmd.env_clear().arg(script()).arg(mode).env("PATH", path).env("GITHUB_OUTPUT", &outputs);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    let written = std::fs::read_to_string(&outputs).unwrap_or_default();
    (out, output_pairs(&written))
}

/// `name=value` lines and `name<<DELIMITER` blocks of a GITHUB_OUTPUT file.
fn output_pairs(written: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut lines = written.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delimiter)) = line.split_once("<<") {
            let value: Vec<&str> = lines.by_ref().take_while(|l| *l != delimiter).collect();
            pairs.push((name.to_string(), value.join("\n")));
        } else if let Some((name, value)) = line.split_once('=') {
            pairs.push((name.to_string(), value.to_string()));
        }
    }
    pairs
}

fn output_value(pairs: &[(String, String)], name: &str) -> String {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no output {name}: {pairs:?}"))
}

/// The comment id and artifact name the action derives for a job.
async fn derived_names(workflow: &str, job: &str, matrix: &str, index: &str, total: &str) -> (String, String) {
    let env = [
        ("GITHUB_WORKFLOW", workflow),
        ("GITHUB_JOB", job),
        ("CHAOS_MATRIX", matrix),
        ("CHAOS_JOB_INDEX", index),
        ("CHAOS_JOB_TOTAL", total),
    ];
    let (out, pairs) = run_script("names", &env, None).await;
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let names = (output_value(&pairs, "comment-id"), output_value(&pairs, "artifact-name"));
    assert!(comment::valid_comment_id(&names.0), "{names:?}");
    assert!(names.1.len() <= 64 && !names.1.contains(['/', '\\', ':', '"', '<', '>', '|', '*', '?']), "{names:?}");
    names
}

#[tokio::test]
async fn action_names_are_unique_per_workflow_job_and_matrix_leg() {
    let leg = |chronik: &str| format!("{{\n  \"os\": \"ubuntu-24.04\",\n  \"chronik\": \"{chronik}\"\n}}");
    assert_eq!(
        derived_names("chaos", "chaos", "null", "0", "1").await,
        ("chaos-chaos".to_string(), "chronik-chaos-chaos".to_string())
    );
    let (a, b) = (leg("v2.10.4"), leg("v2.11.0"));
    assert_eq!(
        derived_names("chaos", "chaos", &a, "0", "2").await,
        (
            "chaos-chaos-os-ubuntu-24.04-chronik-v2.10.4".to_string(),
            "chronik-chaos-chaos-os-ubuntu-24.04-chronik-v2.10.4".to_string()
        )
    );
    assert_ne!(
        derived_names("chaos", "chaos", &a, "0", "2").await,
        derived_names("chaos", "chaos", &b, "1", "2").await
    );
    // Two workflows with a job of the same name: different comments (artifacts belong to one run).
    assert_eq!(derived_names("Chaos / nightly", "chaos", "null", "0", "1").await.0, "Chaos-nightly-chaos");
    // No matrix values to read, but several legs: the index.
    assert_eq!(derived_names("chaos", "chaos", "", "2", "3").await.0, "chaos-chaos-leg-2");
    // Long names are cut to 64 with a hash of the whole, so they stay apart.
    let long = |end: &str| format!("{{\"scenario\": \"{}{end}\"}}", "kill-leader-".repeat(8));
    let (x, y) = (
        derived_names("chaos", "chaos", &long("a"), "0", "2").await,
        derived_names("chaos", "chaos", &long("b"), "1", "2").await,
    );
    assert!(x.0.len() <= 64 && x.1.len() <= 64, "{x:?}");
    assert_ne!(x.0, y.0);
    assert_ne!(x.1, y.1);
}

#[tokio::test]
async fn action_names_given_are_kept_and_bad_ones_stop_before_the_build() {
    let env = [
        ("GITHUB_WORKFLOW", "chaos"),
        ("GITHUB_JOB", "chaos"),
        ("CHAOS_COMMENT_ID", "linux"),
        ("CHAOS_ARTIFACT_NAME", "mine"),
    ];
    let (out, pairs) = run_script("names", &env, None).await;
    assert!(out.status.success());
    assert_eq!(
        (output_value(&pairs, "comment-id"), output_value(&pairs, "artifact-name")),
        ("linux".into(), "mine".into())
    );
    for (k, v, says) in [
        ("CHAOS_COMMENT_ID", "two words", "comment-id must be"),
        ("CHAOS_COMMENT_ID", &"x".repeat(65)[..], "comment-id must be"),
        ("CHAOS_COMMENT", "sometimes", "comment must be always, on-failure or never"),
    ] {
        let (out, _) = run_script("names", &[("GITHUB_JOB", "chaos"), (k, v)], None).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{k}={v}: {stdout}");
        assert!(stdout.contains("::error title=chronik-chaos::") && stdout.contains(says), "{stdout}");
    }
}

/// A `cargo` in `dir/bin` that records its environment (`dir/seen.env`) and arguments
/// (`dir/seen.args`), then exits with `code`; and an empty `dir/action` for GITHUB_ACTION_PATH.
fn fake_cargo(dir: &std::path::Path, code: i32) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let fake = dir.join("bin");
    std::fs::create_dir_all(&fake).unwrap();
    let seen = dir.join("seen");
    std::fs::write(
        fake.join("cargo"),
        format!(
            "#!/usr/bin/env bash\nenv > '{0}.env'\nprintf '%s\\n' \"$@\" > '{0}.args'\nexit {code}\n",
            seen.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod").arg("+x").arg(fake.join("cargo")).status().unwrap();
    let action = dir.join("action");
    std::fs::create_dir_all(&action).unwrap();
    (fake, seen, action)
}

#[tokio::test]
async fn action_run_step_gives_no_token_to_the_build_and_never_comments() {
    let dir = tempfile::tempdir().unwrap();
    // A `cargo` that fails as a FAILed run does.
    let (fake, seen, action) = fake_cargo(dir.path(), 1);
    let file = |name: &str| dir.path().join(name).display().to_string();
    let (summary, github_env, github_path) = (file("summary.md"), file("env"), file("path"));
    let env = [
        ("GITHUB_ACTION_PATH", action.to_str().unwrap()),
        ("GITHUB_WORKSPACE", dir.path().to_str().unwrap()),
        ("CHAOS_OUT", "out"),
        ("CHAOS_CHRONIK_BIN", "chronik-server"),
        ("GITHUB_TOKEN", "secret-token-1"),
        ("GH_TOKEN", "secret-token-2"),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "secret-token-3"),
        ("GITHUB_STEP_SUMMARY", &summary),
        ("GITHUB_ENV", &github_env),
        ("GITHUB_PATH", &github_path),
    ];
    let (out, pairs) = run_script("run", &env, Some(&fake)).await;
    assert_eq!(out.status.code(), Some(1), "the run's own exit code: {}", String::from_utf8_lossy(&out.stderr));
    let cargo_env = std::fs::read_to_string(seen.with_extension("env")).unwrap();
    assert!(!cargo_env.contains("secret-token"), "a token reached the build: {cargo_env}");
    for gone in ["GITHUB_STEP_SUMMARY=", "GITHUB_ENV=", "GITHUB_PATH="] {
        assert!(!cargo_env.contains(gone), "{gone} reached the build");
    }
    assert!(cargo_env.contains("GITHUB_OUTPUT="), "the harness writes the step's outputs");
    let args = std::fs::read_to_string(seen.with_extension("args")).unwrap();
    assert!(args.contains("--comment\nnever\n"), "{args}");
    assert_eq!(output_value(&pairs, "out-dir"), dir.path().join("out").display().to_string());
}

#[tokio::test]
async fn action_build_step_builds_the_harness_without_a_token_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, seen, action) = fake_cargo(dir.path(), 0);
    // This `cargo` prints a built harness's path, as `cargo xtask harness` does last.
    let harness = dir.path().join("chronik-chaos");
    std::fs::copy("/bin/true", &harness).unwrap();
    let script = format!(
        "#!/usr/bin/env bash\nenv > '{0}.env'\nprintf '%s\\n' \"$@\" > '{0}.args'\necho building >&2\necho '{1}'\n",
        seen.display(),
        harness.display()
    );
    std::fs::write(fake.join("cargo"), script).unwrap();
    let env = [
        ("GITHUB_ACTION_PATH", action.to_str().unwrap()),
        ("GITHUB_TOKEN", "secret-token-1"),
        ("GH_TOKEN", "secret-token-2"),
        ("ACTIONS_RUNTIME_TOKEN", "secret-token-3"),
    ];
    let (out, pairs) = run_script("build", &env, Some(&fake)).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(output_value(&pairs, "harness"), harness.display().to_string());
    assert_eq!(std::fs::read_to_string(seen.with_extension("args")).unwrap(), "xtask\nharness\n");
    let cargo_env = std::fs::read_to_string(seen.with_extension("env")).unwrap();
    assert!(!cargo_env.contains("secret-token"), "a token reached the build: {cargo_env}");

    // A build that fails: a warning, no harness, and the job goes on to the run step.
    let (fake, _, action) = fake_cargo(dir.path(), 101);
    let (out, pairs) = run_script("build", &[("GITHUB_ACTION_PATH", action.to_str().unwrap())], Some(&fake)).await;
    assert!(out.status.success() && pairs.is_empty(), "{pairs:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("::warning title=chronik-chaos::the harness did not build"));
}

#[tokio::test]
async fn action_stand_in_runs_without_chronik_and_gives_the_bug_to_the_run_step_only() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, seen, action) = fake_cargo(dir.path(), 0);
    let base = [
        ("GITHUB_ACTION_PATH", action.to_str().unwrap()),
        ("GITHUB_WORKSPACE", dir.path().to_str().unwrap()),
        ("CHAOS_OUT", "out"),
        // No Chronik checkout here: the stand-in needs none.
        ("CHAOS_CHRONIK_PATH", "no-such-checkout"),
        ("CHAOS_SCENARIOS", "baseline"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut env: Vec<(&str, &str)> = base.to_vec();
        env.extend_from_slice(extra);
        env
    };

    let (out, _) =
        run_script("run", &with(&[("CHAOS_STAND_IN", "true"), ("STAND_IN_BUG", "reorder-batches")]), Some(&fake)).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let args = std::fs::read_to_string(seen.with_extension("args")).unwrap();
    assert!(args.contains("--stand-in\n") && !args.contains("--chronik-dir") && !args.contains("--profile"), "{args}");
    let env = std::fs::read_to_string(seen.with_extension("env")).unwrap();
    assert!(env.lines().any(|l| l == "STAND_IN_BUG=reorder-batches"), "the nodes inherit the bug: {env}");

    // A shard goes to the binary after `--`; it needs a seed, and a bad one stops the step.
    let shard = [("CHAOS_STAND_IN", "true"), ("CHAOS_SHARD", "2/4"), ("CHAOS_SEED", "7")];
    let (out, _) = run_script("run", &with(&shard), Some(&fake)).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let args = std::fs::read_to_string(seen.with_extension("args")).unwrap();
    assert!(args.contains("--\n--fail-on\nany\n--shard\n2/4\n"), "{args}");
    for (bad, says) in [
        (&[("CHAOS_STAND_IN", "true"), ("CHAOS_SHARD", "2/4")][..], "shard needs seed"),
        (&[("CHAOS_STAND_IN", "true"), ("CHAOS_SHARD", "two"), ("CHAOS_SEED", "7")][..], "shard must be K/N"),
    ] {
        let (out, _) = run_script("run", &with(bad), Some(&fake)).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stdout}");
        assert!(stdout.contains(says), "{bad:?}: {stdout}");
    }

    // Against Chronik, a STAND_IN_BUG from a job-level env: does not reach the build.
    let chronik = dir.path().join("chronik");
    std::fs::create_dir_all(&chronik).unwrap();
    std::fs::write(chronik.join("Cargo.toml"), "").unwrap();
    let (out, _) = run_script(
        "run",
        &with(&[("CHAOS_CHRONIK_PATH", "chronik"), ("CHAOS_STAND_IN", "false"), ("STAND_IN_BUG", "")]),
        Some(&fake),
    )
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let args = std::fs::read_to_string(seen.with_extension("args")).unwrap();
    assert!(args.contains("--chronik-dir\n") && !args.contains("--stand-in"), "{args}");
    let env = std::fs::read_to_string(seen.with_extension("env")).unwrap();
    assert!(!env.contains("STAND_IN_BUG"), "{env}");

    // Bad stand-in inputs stop the names step, before any build.
    for (stand_in, bug, says) in [
        ("false", "reorder-batches", "needs stand-in: true"),
        ("yes", "", "stand-in must be true or false"),
        ("true", "reorder batches;", "stand-in-bug must be bug names"),
    ] {
        let env = [("GITHUB_JOB", "chaos"), ("CHAOS_STAND_IN", stand_in), ("CHAOS_STAND_IN_BUG", bug)];
        let (out, _) = run_script("names", &env, None).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{stand_in} {bug}: {stdout}");
        assert!(stdout.contains("::error title=chronik-chaos::") && stdout.contains(says), "{stdout}");
    }
}

/// The arguments the fake `cargo` of [`fake_cargo`] was given last, split at the first `--`:
/// xtask's flags, then the binary's.
fn cargo_args_split(seen: &std::path::Path) -> (Vec<String>, Vec<String>) {
    let args: Vec<String> =
        std::fs::read_to_string(seen.with_extension("args")).unwrap().lines().map(String::from).collect();
    let at = args.iter().position(|a| a == "--").unwrap_or_else(|| panic!("no `--` in {args:?}"));
    (args[..at].to_vec(), args[at + 1..].to_vec())
}

#[tokio::test]
async fn action_network_netns_runs_the_harness_under_sudo_and_jobs_go_to_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, seen, action) = fake_cargo(dir.path(), 0);
    let base = [
        ("GITHUB_ACTION_PATH", action.to_str().unwrap()),
        ("GITHUB_WORKSPACE", dir.path().to_str().unwrap()),
        ("CHAOS_OUT", "out"),
        ("CHAOS_STAND_IN", "true"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut env: Vec<(&str, &str)> = base.to_vec();
        env.extend_from_slice(extra);
        env
    };
    let pair = |args: &[String], a: &str, b: &str| args.windows(2).any(|w| w[0] == a && w[1] == b);

    // netns: xtask's --sudo before `--`, the network and the jobs after it, for the binary.
    let (out, _) = run_script("run", &with(&[("CHAOS_NETWORK", "netns"), ("CHAOS_JOBS", "2")]), Some(&fake)).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let (xtask, binary) = cargo_args_split(&seen);
    assert!(xtask.iter().any(|a| a == "--sudo"), "{xtask:?}");
    assert!(!binary.iter().any(|a| a == "--sudo"), "{binary:?}");
    assert!(pair(&binary, "--network", "netns") && pair(&binary, "--jobs", "2"), "{binary:?}");
    assert!(!xtask.iter().any(|a| a == "--network" || a == "--jobs"), "{xtask:?}");

    // netns alone: one job is the binary's default, so no --jobs.
    let (out, _) = run_script("run", &with(&[("CHAOS_NETWORK", "netns"), ("CHAOS_JOBS", "1")]), Some(&fake)).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let (xtask, binary) = cargo_args_split(&seen);
    assert!(xtask.iter().any(|a| a == "--sudo") && pair(&binary, "--network", "netns"), "{xtask:?} {binary:?}");
    assert!(!binary.iter().any(|a| a == "--jobs"), "{binary:?}");

    // The defaults (the inputs' own, and unset): no sudo, no network, no jobs.
    for defaults in [&[("CHAOS_NETWORK", "proxy"), ("CHAOS_JOBS", "1")][..], &[]] {
        let (out, _) = run_script("run", &with(defaults), Some(&fake)).await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        let (xtask, binary) = cargo_args_split(&seen);
        let all: Vec<&String> = xtask.iter().chain(&binary).collect();
        assert!(!all.iter().any(|a| ["--sudo", "--network", "--jobs"].contains(&a.as_str())), "{all:?}");
    }

    // Bad inputs stop the step with exit 2 before cargo runs.
    for (bad, says) in [
        (&[("CHAOS_NETWORK", "x")][..], "network must be proxy or netns, not 'x'"),
        (&[("CHAOS_NETWORK", "netns"), ("CHAOS_JOBS", "0")][..], "jobs must be a whole number from 1 to 16, not '0'"),
        (&[("CHAOS_NETWORK", "netns"), ("CHAOS_JOBS", "17")][..], "jobs must be a whole number from 1 to 16, not '17'"),
        (
            &[("CHAOS_NETWORK", "netns"), ("CHAOS_JOBS", "two")][..],
            "jobs must be a whole number from 1 to 16, not 'two'",
        ),
        (&[("CHAOS_NETWORK", "netns"), ("CHAOS_JOBS", "02")][..], "jobs must be a whole number from 1 to 16, not '02'"),
        (&[("CHAOS_JOBS", "2")][..], "jobs above 1 needs network: netns"),
        (&[("CHAOS_NETWORK", "proxy"), ("CHAOS_JOBS", "3")][..], "jobs above 1 needs network: netns"),
    ] {
        let _ = std::fs::remove_file(seen.with_extension("args"));
        let (out, _) = run_script("run", &with(bad), Some(&fake)).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stdout}");
        assert!(stdout.contains("::error title=chronik-chaos::") && stdout.contains(says), "{bad:?}: {stdout}");
        assert!(!seen.with_extension("args").exists(), "{bad:?}: cargo ran");
    }

    // action.yml hands both inputs to the run step through env:, and installs nftables for netns.
    let action_yml =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("action.yml")).unwrap();
    let steps: Vec<&str> = action_yml.split_once("\n  steps:\n").expect("runs.steps").1.split("\n    - ").collect();
    let run = steps.iter().find(|s| s.contains("action-run.sh\" run")).expect("the run step");
    assert!(
        run.contains("CHAOS_NETWORK: ${{ inputs.network }}") && run.contains("CHAOS_JOBS: ${{ inputs.jobs }}"),
        "{run}"
    );
    let install = steps.iter().find(|s| s.contains("apt-get install")).expect("the install step");
    assert!(install.contains("inputs.network == 'netns'") && install.contains("nftables"), "{install}");
}

#[tokio::test]
async fn action_yml_gives_the_token_only_to_the_lookup_and_publish_steps() {
    let action = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("action.yml")).unwrap();
    let steps = action.split_once("\n  steps:\n").expect("runs.steps").1;
    let steps: Vec<&str> = steps.split("\n    - ").skip(1).collect();
    let with_token: Vec<&str> = steps.iter().copied().filter(|s| s.contains("inputs.github-token")).collect();
    // The publish step, and the base-branch lookup, which runs the harness a step without the
    // token built, and no cargo (nothing of Chronik's or the harness's build sees the token).
    assert_eq!(with_token.len(), 2, "{with_token:?}");
    assert!(with_token[0].contains("action-run.sh\" baseline"), "{}", with_token[0]);
    assert!(with_token[0].contains("CHAOS_HARNESS: ${{ steps.harness.outputs.harness }}"), "{}", with_token[0]);
    assert!(with_token[1].contains("action-run.sh\" publish"), "{}", with_token[1]);
    let build = steps.iter().position(|s| s.contains("action-run.sh\" build")).expect("the harness build step");
    let lookup = steps.iter().position(|s| s.contains("action-run.sh\" baseline")).unwrap();
    assert!(build < lookup && !steps[build].contains("TOKEN"), "{}", steps[build]);
    let script = std::fs::read_to_string(script()).unwrap();
    let mode = |name: &str| {
        let start = script.find(&format!("\n{name}() {{\n")).unwrap_or_else(|| panic!("no {name}()"));
        let body = &script[start..];
        body[..body.find("\n}\n").unwrap()].to_string()
    };
    assert!(!mode("baseline").contains("cargo"), "the step with the token runs no cargo");
    assert!(mode("build").contains("drop_credentials") && mode("run").contains("drop_credentials"));
    let run = steps.iter().position(|s| s.contains("action-run.sh\" run")).expect("the run step");
    let publish = steps.iter().position(|s| s.contains("action-run.sh\" publish")).unwrap();
    assert!(run < publish, "the publish step comes after the run");
    assert!(!steps[run].contains("GITHUB_TOKEN") && !steps[run].contains("CHAOS_COMMENT"), "{}", steps[run]);
    assert!(steps[publish].contains("!cancelled()"), "it publishes a failing run too");
}

#[tokio::test]
async fn action_baseline_step_hands_the_base_results_to_the_run_step() {
    let standin = StandIn::start().await;
    standin.add_run(10, "chaos.yml", "main", "success", vec![stored(100, ARTIFACT, false, ALL_PASS)]);
    let dir = tempfile::tempdir().unwrap();
    let base_dir = dir.path().join("baseline");
    let (url, base_dir) = (standin.url(), base_dir.to_str().unwrap().to_string());
    let env = |harness: &'static str, base: &'static str| {
        vec![
            ("GITHUB_TOKEN", ACTIONS.to_string()),
            ("GITHUB_REPOSITORY", "acme/chaos".to_string()),
            ("GITHUB_API_URL", url.clone()),
            ("GITHUB_BASE_REF", base.to_string()),
            ("GITHUB_WORKFLOW_REF", "acme/chaos/.github/workflows/chaos.yml@refs/pull/7/merge".to_string()),
            ("CHAOS_HARNESS", harness.to_string()),
            ("CHAOS_ARTIFACT_NAME", ARTIFACT.to_string()),
            ("CHAOS_BASELINE_DIR", base_dir.clone()),
        ]
    };
    let run = |e: Vec<(&'static str, String)>| async move {
        let pairs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_script("baseline", &pairs, None).await
    };

    let (out, pairs) = run(env(env!("CARGO_BIN_EXE_chronik-chaos"), "main")).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let found = format!("{base_dir}/results.json");
    assert_eq!(output_value(&pairs, "baseline"), found, "the run step's CHAOS_BASELINE");
    assert!(
        stdout.contains(&format!(
            "chronik-chaos baseline: comparing with run 10 (https://github.com/acme/chaos/actions/runs/10) of chaos.yml on main: artifact {ARTIFACT}, {found}"
        )),
        "{stdout}"
    );
    assert_eq!(std::fs::read(&found).unwrap(), ALL_PASS);

    // Nothing on the base branch: one line, exit 0, no output. Not a pull request: no request.
    let (out, pairs) = run(env(env!("CARGO_BIN_EXE_chronik-chaos"), "develop")).await;
    assert!(out.status.success() && pairs.is_empty(), "{pairs:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(
            "chronik-chaos baseline: no successful run of chaos.yml on develop yet: no comparison with develop"
        ),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let asked = standin.requests().len();
    let (out, pairs) = run(env(env!("CARGO_BIN_EXE_chronik-chaos"), "")).await;
    assert!(out.status.success() && pairs.is_empty(), "{pairs:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("not a pull request"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(standin.requests().len(), asked);

    // The build step left no harness: no comparison, and the job goes on.
    let (out, pairs) = run(env("/nonexistent/chronik-chaos", "main")).await;
    assert!(out.status.success() && pairs.is_empty(), "{pairs:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no harness was built"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The environment of the publish step for pull request 7 of acme/chaos on `gh`.
fn publish_env<'a>(
    gh_url: &'a str,
    event: &'a str,
    summary: &'a str,
    out: &'a str,
    id: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("GITHUB_TOKEN", ACTIONS),
        ("GITHUB_REPOSITORY", "acme/chaos"),
        ("GITHUB_API_URL", gh_url),
        ("GITHUB_EVENT_PATH", event),
        ("GITHUB_EVENT_NAME", "pull_request"),
        ("GITHUB_STEP_SUMMARY", summary),
        ("CHAOS_OUT", out),
        ("CHAOS_HARNESS", env!("CARGO_BIN_EXE_chronik-chaos")),
        ("CHAOS_COMMENT_ID", id),
        ("CHAOS_VERDICT", "FAIL"),
    ]
}

#[tokio::test]
async fn action_publish_step_keeps_one_comment_per_leg_and_writes_the_job_summary() {
    let gh = StandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        json!({ "pull_request": { "number": 7 }, "repository": { "full_name": "acme/chaos" } }).to_string(),
    )
    .unwrap();
    let (url, event) = (gh.url(), event.to_str().unwrap().to_string());
    let legs = [r#"{"chronik": "v2.10.4"}"#, r#"{"chronik": "v2.11.0"}"#];
    let mut ids = Vec::new();
    for (i, matrix) in legs.iter().enumerate() {
        ids.push(derived_names("chaos", "chaos", matrix, &i.to_string(), "2").await.0);
    }
    for round in 1..=2 {
        for (leg, id) in ids.iter().enumerate() {
            let out = dir.path().join(format!("out-{leg}"));
            std::fs::create_dir_all(&out).unwrap();
            std::fs::write(out.join("report.md"), format!("# leg {leg} round {round}: lost writes, see #12\n"))
                .unwrap();
            let summary = dir.path().join(format!("summary-{leg}-{round}.md"));
            let env = publish_env(&url, &event, summary.to_str().unwrap(), out.to_str().unwrap(), id);
            let (run, outputs) = run_script("publish", &env, None).await;
            let stdout = String::from_utf8_lossy(&run.stdout);
            assert!(run.status.success(), "{stdout}{}", String::from_utf8_lossy(&run.stderr));
            assert!(stdout.contains(if round == 1 { "created" } else { "updated" }), "{stdout}");
            assert_eq!(output_value(&outputs, "summary-written"), "true", "the self-test reads this output");
            assert_eq!(
                std::fs::read_to_string(&summary).unwrap(),
                format!("# leg {leg} round {round}: lost writes, see #\u{2060}12\n\n"),
                "the job summary holds the report, written by this step"
            );
        }
    }
    let mut bodies: Vec<String> = gh.comments().into_iter().map(|c| c.body).collect();
    bodies.sort();
    let mut expected: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(leg, id)| {
            format!("<!-- chronik-chaos:report:{id} -->\n# leg {leg} round 2: lost writes, see #\u{2060}12\n")
        })
        .collect();
    expected.sort();
    assert_eq!(bodies, expected, "one comment per leg, each updated by its own leg");
    assert!(gh.writes().iter().all(|r| r.method != "DELETE"));
}

#[tokio::test]
async fn action_publish_step_warns_and_passes_when_github_refuses_or_there_is_no_report() {
    let gh = StandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let summary = dir.path().join("summary.md");
    let event = dir.path().join("event.json");
    std::fs::write(&event, json!({ "pull_request": { "number": 7 } }).to_string()).unwrap();
    let url = gh.url();
    let (out_s, summary_s, event_s) =
        (out.to_str().unwrap().to_string(), summary.to_str().unwrap().to_string(), event.to_str().unwrap().to_string());
    // No report.md: the run stopped early.
    let (run, _) = run_script("publish", &publish_env(&url, &event_s, &summary_s, &out_s, "chaos-chaos"), None).await;
    assert!(run.status.success());
    assert!(String::from_utf8_lossy(&run.stdout).contains("::notice title=chronik-chaos::no report.md"));
    assert!(gh.requests().is_empty() && !summary.exists());
    // A rejected token: an error for the command, a warning for the step. The harness is
    // found where `cargo xtask` builds it in the action's checkout.
    std::fs::write(out.join("report.md"), "# report\n").unwrap();
    let action = dir.path().join("action");
    std::fs::create_dir_all(action.join("target/debug")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_chronik-chaos"), action.join("target/debug/chronik-chaos")).unwrap();
    let action_s = action.to_str().unwrap().to_string();
    let mut env = publish_env(&url, &event_s, &summary_s, &out_s, "chaos-chaos");
    env.retain(|(k, _)| !matches!(*k, "GITHUB_TOKEN" | "CHAOS_HARNESS"));
    env.push(("GITHUB_TOKEN", "expired-token"));
    env.push(("GITHUB_ACTION_PATH", &action_s));
    let (run, _) = run_script("publish", &env, None).await;
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}");
    assert!(stdout.contains("::warning title=chronik-chaos PR comment::"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("GitHub rejected the token (401"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(std::fs::read_to_string(&summary).unwrap(), "# report\n\n", "the job summary is written first");
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
    let cfg = CommentConfig { comment_id: Some("live-test".into()), ..CommentConfig::default() };
    let (first, _) = upsert(&ctx, &cfg, "chronik-chaos live test: first write\n", true).await;
    let first = match first.unwrap() {
        CommentOutcome::Created { id, .. } | CommentOutcome::Updated { id, .. } => id,
        CommentOutcome::Skipped { reason } => panic!("skipped: {reason}"),
    };
    let (second, _) = upsert(&ctx, &cfg, "chronik-chaos live test: second write\n", true).await;
    assert!(matches!(second.unwrap(), CommentOutcome::Updated { id, .. } if id == first));
}
