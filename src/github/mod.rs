//! Everything that talks to GitHub: the run's [`GithubContext`] (token, repository, pull request,
//! API URL, fork) resolved once from the GitHub Actions environment and flags, the sticky
//! pull-request comment ([`comment`]) and the base branch's results ([`baseline`]). Nothing else
//! in the crate speaks to GitHub.

pub mod baseline;
pub mod comment;

/// An error and its causes on one line, each cause once.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
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

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The public GitHub API, used when neither `--api-url` nor `GITHUB_API_URL` is given.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// The raw inputs, before validation: each is a flag's value or, when the flag is absent, its
/// environment variable's. Empty strings count as absent (Actions passes an unset secret as "").
#[derive(Debug, Clone, Default)]
pub struct ContextInputs {
    /// `--token` / `GITHUB_TOKEN`.
    pub token: Option<String>,
    /// `--repo` / `GITHUB_REPOSITORY`, as `owner/name`.
    pub repository: Option<String>,
    /// `--pr`: overrides the number read from the event file.
    pub pr: Option<u64>,
    /// `--api-url` / `GITHUB_API_URL`.
    pub api_url: Option<String>,
    /// `--event-path` / `GITHUB_EVENT_PATH`: the webhook payload that triggered the workflow.
    pub event_path: Option<PathBuf>,
    /// `GITHUB_EVENT_NAME` (`pull_request`, `pull_request_target`, `issue_comment`, ...).
    pub event_name: Option<String>,
}

impl ContextInputs {
    /// Reads the GitHub Actions variables of this process (no flags).
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        ContextInputs {
            token: var("GITHUB_TOKEN"),
            repository: var("GITHUB_REPOSITORY"),
            pr: None,
            api_url: var("GITHUB_API_URL"),
            event_path: var("GITHUB_EVENT_PATH").map(PathBuf::from),
            event_name: var("GITHUB_EVENT_NAME"),
        }
    }
}

/// Where a run stands on GitHub, validated. Absent parts are not errors here: the comment
/// decides what it can do without them (no token or no pull request means it skips).
#[derive(Debug, Clone)]
pub struct GithubContext {
    pub token: Option<Token>,
    pub repo: Option<Repo>,
    /// The pull request to comment on.
    pub pr: Option<u64>,
    /// API base URL without a trailing `/` (GitHub Enterprise: `https://HOST/api/v3`).
    pub api_url: String,
    /// The pull request comes from another repository (a fork): on `pull_request` events its
    /// token is read-only.
    pub fork: bool,
    pub event_name: Option<String>,
}

impl GithubContext {
    /// Validates the inputs and reads the event file, if one is named.
    pub fn resolve(inputs: &ContextInputs) -> Result<GithubContext, ContextError> {
        let nonempty = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        let event = match inputs.event_path.as_deref().filter(|p| !p.as_os_str().is_empty()) {
            Some(path) => EventInfo::read(path)?,
            None => EventInfo::default(),
        };
        let repo = match nonempty(&inputs.repository).or(event.repository.clone()) {
            Some(r) => Some(r.parse::<Repo>()?),
            None => None,
        };
        let pr = match inputs.pr {
            Some(0) => return Err(ContextError::PullRequestZero),
            Some(n) => Some(n),
            None => event.pr,
        };
        let api_url = nonempty(&inputs.api_url).unwrap_or_else(|| DEFAULT_API_URL.to_string());
        let api_url = api_url.trim_end_matches('/').to_string();
        if !(api_url.starts_with("https://") || api_url.starts_with("http://"))
            || api_url.parse::<hyper::Uri>().is_err()
        {
            return Err(ContextError::ApiUrl { value: api_url });
        }
        Ok(GithubContext {
            token: nonempty(&inputs.token).map(Token),
            repo,
            pr,
            api_url,
            fork: event.fork,
            event_name: nonempty(&inputs.event_name),
        })
    }

    /// A fork pull request whose token cannot write: `pull_request` (and similar) events from a
    /// fork. `pull_request_target` runs in the base repository with a token that can write.
    pub fn read_only_fork(&self) -> bool {
        self.fork && self.event_name.as_deref() != Some("pull_request_target")
    }
}

/// A GitHub token. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(token: impl Into<String>) -> Token {
        Token(token.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// A repository, `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub owner: String,
    pub name: String,
}

impl std::str::FromStr for Repo {
    type Err = ContextError;

    fn from_str(s: &str) -> Result<Repo, ContextError> {
        let ok = |part: &str| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match s.split_once('/') {
            Some((owner, name)) if ok(owner) && ok(name) => {
                Ok(Repo { owner: owner.to_string(), name: name.to_string() })
            }
            _ => Err(ContextError::Repository { value: s.to_string() }),
        }
    }
}

impl fmt::Display for Repo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// Inputs that are present but wrong. Each message names the flag, variable or file to fix.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("repository `{value}` (from --repo or GITHUB_REPOSITORY) is not `owner/name`")]
    Repository { value: String },
    #[error("--pr must be a pull request number, not 0")]
    PullRequestZero,
    #[error("API URL `{value}` (from --api-url or GITHUB_API_URL) is not an http(s) URL")]
    ApiUrl { value: String },
    #[error("cannot read the event file {} (from --event-path or GITHUB_EVENT_PATH): {source}", path.display())]
    EventRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the event file {} (from --event-path or GITHUB_EVENT_PATH) is not JSON: {source}", path.display())]
    EventJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the event file {} (from --event-path or GITHUB_EVENT_PATH): `{field}` {problem}", path.display())]
    EventField { path: PathBuf, field: &'static str, problem: &'static str },
}

/// What the comment needs from a webhook payload.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EventInfo {
    /// `pull_request.number`; for `issue_comment` on a pull request, `issue.number`; for
    /// `workflow_run`, the first of `workflow_run.pull_requests` (empty for fork pull requests).
    pub pr: Option<u64>,
    /// The head repository differs from the base repository, or was deleted.
    pub fork: bool,
    /// `repository.full_name`.
    pub repository: Option<String>,
}

impl EventInfo {
    /// Reads and parses the event file at `path`.
    pub fn read(path: &Path) -> Result<EventInfo, ContextError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ContextError::EventRead { path: path.into(), source })?;
        let json: Value =
            serde_json::from_str(&text).map_err(|source| ContextError::EventJson { path: path.into(), source })?;
        EventInfo::from_json(&json, path)
    }

    /// Extracts the pull request, fork and repository from a payload; `path` names it in errors.
    pub fn from_json(event: &Value, path: &Path) -> Result<EventInfo, ContextError> {
        let number = |v: &Value, field: &'static str| -> Result<Option<u64>, ContextError> {
            match v {
                Value::Null => Ok(None),
                v => match v.as_u64() {
                    Some(n) if n > 0 => Ok(Some(n)),
                    _ => {
                        Err(ContextError::EventField { path: path.into(), field, problem: "is not a positive integer" })
                    }
                },
            }
        };
        let repository = event["repository"]["full_name"].as_str().map(str::to_string);
        let pull = &event["pull_request"];
        if pull.is_object() {
            let pr = number(&pull["number"], "pull_request.number")?;
            if pr.is_none() {
                return Err(ContextError::EventField {
                    path: path.into(),
                    field: "pull_request.number",
                    problem: "is missing",
                });
            }
            return Ok(EventInfo { pr, fork: is_fork(pull), repository });
        }
        let issue = &event["issue"];
        if issue.is_object() {
            // An issue_comment event: only a comment on a pull request has `issue.pull_request`.
            let pr = if issue["pull_request"].is_object() { number(&issue["number"], "issue.number")? } else { None };
            return Ok(EventInfo { pr, fork: false, repository });
        }
        let pr = number(&event["workflow_run"]["pull_requests"][0]["number"], "workflow_run.pull_requests[0].number")?;
        Ok(EventInfo { pr, fork: false, repository })
    }
}

/// A pull request is from a fork when its head repository is not its base repository. `head.repo`
/// is null when the fork was deleted. `head.repo.fork` alone is not enough: it is also true for a
/// pull request between two branches of a repository that is itself a fork, whose token can write;
/// it is used only when the full names are missing.
fn is_fork(pull: &Value) -> bool {
    let head = &pull["head"]["repo"];
    let base = &pull["base"]["repo"];
    if head.is_null() && base.is_object() {
        return true;
    }
    match (head["full_name"].as_str(), base["full_name"].as_str()) {
        (Some(h), Some(b)) => !h.eq_ignore_ascii_case(b),
        _ => head["fork"].as_bool().unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(event: Value, expected: Option<(Option<u64>, bool)>) {
        let got = EventInfo::from_json(&event, Path::new("event.json")).ok().map(|e| (e.pr, e.fork));
        assert_eq!(got, expected, "event: {event}");
    }

    fn pull(number: Value, head: Value, base: &str) -> Value {
        json!({
            "pull_request": { "number": number, "head": { "repo": head }, "base": { "repo": { "full_name": base, "fork": false } } },
            "repository": { "full_name": base },
        })
    }

    #[test]
    fn pull_request_number_and_fork_detection() {
        let same = json!({ "full_name": "acme/chaos", "fork": false });
        let fork = json!({ "full_name": "someone/chaos", "fork": true });
        // A fork's own branches: head == base although the repository is a fork.
        let fork_of_fork = json!({ "full_name": "acme/chaos", "fork": true });
        check(pull(json!(7), same, "acme/chaos"), Some((Some(7), false)));
        check(pull(json!(8), fork, "acme/chaos"), Some((Some(8), true)));
        check(pull(json!(9), fork_of_fork, "acme/chaos"), Some((Some(9), false)));
        check(pull(json!(10), Value::Null, "acme/chaos"), Some((Some(10), true)));
        check(pull(json!(11), json!({ "fork": true }), "acme/chaos"), Some((Some(11), true)));
        check(pull(json!(12), json!({ "full_name": "ACME/Chaos" }), "acme/chaos"), Some((Some(12), false)));
    }

    #[test]
    fn issue_comment_workflow_run_and_push_events() {
        check(json!({ "issue": { "number": 5, "pull_request": { "url": "u" } } }), Some((Some(5), false)));
        check(json!({ "issue": { "number": 5 } }), Some((None, false)));
        check(json!({ "workflow_run": { "pull_requests": [ { "number": 3 } ] } }), Some((Some(3), false)));
        check(json!({ "workflow_run": { "pull_requests": [] } }), Some((None, false)));
        check(json!({ "ref": "refs/heads/main", "commits": [] }), Some((None, false)));
    }

    #[test]
    fn malformed_numbers_are_errors_naming_the_field() {
        check(json!({ "pull_request": { "number": "7" } }), None);
        check(json!({ "pull_request": { "number": 0 } }), None);
        check(json!({ "pull_request": {} }), None);
        let err = EventInfo::from_json(&json!({ "pull_request": { "number": -1 } }), Path::new("e.json")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the event file e.json (from --event-path or GITHUB_EVENT_PATH): `pull_request.number` is not a positive integer"
        );
    }

    #[test]
    fn resolve_reads_the_event_file_and_lets_flags_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("event.json");
        std::fs::write(&path, pull(json!(42), json!({ "full_name": "x/chaos" }), "acme/chaos").to_string()).unwrap();
        let inputs = ContextInputs {
            token: Some("t".into()),
            event_path: Some(path.clone()),
            event_name: Some("pull_request".into()),
            api_url: Some("https://ghe.example/api/v3/".into()),
            ..ContextInputs::default()
        };
        let ctx = GithubContext::resolve(&inputs).unwrap();
        assert_eq!(ctx.pr, Some(42));
        assert_eq!(ctx.repo, Some(Repo { owner: "acme".into(), name: "chaos".into() }), "from repository.full_name");
        assert!(ctx.fork && ctx.read_only_fork());
        assert_eq!(ctx.api_url, "https://ghe.example/api/v3");
        assert_eq!(format!("{:?}", ctx.token), "Some(Token(***))");

        let target = ContextInputs { event_name: Some("pull_request_target".into()), ..inputs.clone() };
        assert!(!GithubContext::resolve(&target).unwrap().read_only_fork(), "pull_request_target can write");

        let flags = ContextInputs { pr: Some(3), repository: Some("me/other".into()), ..inputs.clone() };
        let ctx = GithubContext::resolve(&flags).unwrap();
        assert_eq!((ctx.pr, ctx.repo.unwrap().to_string()), (Some(3), "me/other".to_string()));

        let empty =
            ContextInputs { token: Some(String::new()), api_url: Some(String::new()), ..ContextInputs::default() };
        let ctx = GithubContext::resolve(&empty).unwrap();
        assert_eq!((ctx.token, ctx.pr, ctx.api_url.as_str()), (None, None, DEFAULT_API_URL));
    }

    #[test]
    fn resolve_errors_name_what_to_fix() {
        let bad = |inputs: ContextInputs| GithubContext::resolve(&inputs).unwrap_err().to_string();
        assert_eq!(
            bad(ContextInputs { repository: Some("acme".into()), ..Default::default() }),
            "repository `acme` (from --repo or GITHUB_REPOSITORY) is not `owner/name`"
        );
        assert!(bad(ContextInputs { repository: Some("a/b/c".into()), ..Default::default() }).contains("owner/name"));
        assert!(
            bad(ContextInputs { api_url: Some("api.github.com".into()), ..Default::default() }).contains("--api-url")
        );
        assert!(bad(ContextInputs { pr: Some(0), ..Default::default() }).contains("--pr"));
        let missing = bad(ContextInputs { event_path: Some("no/such/event.json".into()), ..Default::default() });
        assert!(missing
            .starts_with("cannot read the event file no/such/event.json (from --event-path or GITHUB_EVENT_PATH)"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("event.json");
        std::fs::write(&path, "{ not json").unwrap();
        assert!(bad(ContextInputs { event_path: Some(path), ..Default::default() }).contains("is not JSON"));
    }
}
