//! The base branch's results, found without configuration: the newest successful run of this
//! workflow on the pull request's base branch that kept this job's results artifact, downloaded
//! (REST: workflow runs, the run's artifacts, the artifact's zip through GitHub's redirect) and
//! its `results.json` unpacked for `--baseline`. A comparison that cannot be made is an
//! [`Outcome::NoComparison`] with the reason in one line, never an error that fails a run.

use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::StatusCode;
use octocrab::Octocrab;
use serde_json::Value;

use super::{error_chain, Repo, Token};
use crate::percent;
use crate::results::Results;

/// The most successful runs of the base branch looked at, newest first.
pub const DEFAULT_MAX_RUNS: u8 = 10;
/// The largest `results.json` unpacked from an artifact (a suite's is well under 1 MiB).
const MAX_RESULTS_BYTES: u64 = 64 << 20;
/// The file the comparison needs, at the root of the artifact.
const RESULTS_FILE: &str = "results.json";

/// What to look for.
#[derive(Debug, Clone)]
pub struct Request {
    pub api_url: String,
    pub token: Option<Token>,
    pub repo: Repo,
    /// The pull request's base branch (`GITHUB_BASE_REF`).
    pub base: String,
    /// The workflow's file name (`chaos.yml`) or numeric id.
    pub workflow: String,
    /// The artifact this job uploads.
    pub artifact: String,
    /// Where `results.json` is written.
    pub dir: PathBuf,
    pub max_runs: u8,
}

/// What the lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The base branch's `results.json`, unpacked at `path`.
    Found { run_id: u64, run_url: Option<String>, path: PathBuf },
    /// No comparison, and why (one line).
    NoComparison(String),
}

/// The workflow's file name from `GITHUB_WORKFLOW_REF`
/// (`owner/repo/.github/workflows/chaos.yml@refs/pull/7/merge` → `chaos.yml`).
pub fn workflow_file(workflow_ref: &str) -> Option<String> {
    let path = workflow_ref.split('@').next()?;
    let file = path.rsplit('/').next()?.trim();
    (!file.is_empty()).then(|| file.to_string())
}

/// One workflow run of the base branch, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    id: u64,
    url: Option<String>,
}

/// The runs in a `GET …/actions/workflows/{workflow}/runs` answer, newest first.
fn runs(answer: &Value) -> Result<Vec<Run>, String> {
    let list = answer["workflow_runs"].as_array().ok_or("no workflow_runs in the answer")?;
    list.iter()
        .map(|r| {
            let id = r["id"].as_u64().ok_or("a workflow run without an id")?;
            Ok(Run { id, url: r["html_url"].as_str().map(str::to_string) })
        })
        .collect()
}

/// The artifact named `name` in a `GET …/actions/runs/{run}/artifacts` answer: its id, or why
/// it cannot be used (absent, expired).
fn artifact(answer: &Value, name: &str) -> Result<u64, String> {
    let list = answer["artifacts"].as_array().ok_or("no artifacts in the answer")?;
    let named: Vec<&Value> = list.iter().filter(|a| a["name"].as_str() == Some(name)).collect();
    if let Some(a) = named.iter().find(|a| a["expired"].as_bool() != Some(true)) {
        return a["id"].as_u64().ok_or_else(|| "an artifact without an id".to_string());
    }
    Err(if named.is_empty() { "no artifact of that name".to_string() } else { "its artifact has expired".to_string() })
}

/// `results.json` from the root of an artifact's zip, checked to be a results file.
pub fn results_from_zip(zip: &[u8]) -> Result<Vec<u8>, String> {
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(zip)).map_err(|e| format!("the artifact is not a zip file: {e}"))?;
    let mut file =
        archive.by_name(RESULTS_FILE).map_err(|_| format!("the artifact has no {RESULTS_FILE} at its root"))?;
    if file.size() > MAX_RESULTS_BYTES {
        return Err(format!("its {RESULTS_FILE} is {} bytes, more than the {MAX_RESULTS_BYTES} read", file.size()));
    }
    let mut bytes = Vec::new();
    file.by_ref()
        .take(MAX_RESULTS_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot unpack its {RESULTS_FILE}: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("its {RESULTS_FILE} is not UTF-8 text"))?;
    Results::parse_with_sharding(&text, &format!("its {RESULTS_FILE}"))?;
    let bytes = text.into_bytes();
    Ok(bytes)
}

/// Finds, downloads and unpacks the base branch's results. Every request and every reason to
/// stop is said through `progress`; only a `results.json` that cannot be written to `dir` is an
/// error.
pub async fn fetch(req: &Request, progress: &dyn Fn(&str)) -> anyhow::Result<Outcome> {
    let no = |why: String| Ok(Outcome::NoComparison(why));
    let Some(token) = &req.token else {
        return no("no GitHub token (GITHUB_TOKEN or --token) to read the base branch's runs".into());
    };
    let client = match Octocrab::builder().base_uri(req.api_url.as_str()).map(|b| b.personal_token(token.expose())) {
        Ok(b) => match b.build() {
            Ok(c) => c,
            Err(e) => return no(format!("cannot set up a GitHub client for {}: {e}", req.api_url)),
        },
        Err(e) => return no(format!("cannot set up a GitHub client for {}: {e}", req.api_url)),
    };
    let (owner, name) = (percent::encode(&req.repo.owner), percent::encode(&req.repo.name));
    let path = format!(
        "/repos/{owner}/{name}/actions/workflows/{}/runs?branch={}&status=success&per_page={}",
        percent::encode(&req.workflow),
        percent::encode(&req.base),
        req.max_runs.max(1)
    );
    let listed = match get_json(&client, &path).await {
        Ok(v) => runs(&v),
        Err(e) => Err(e),
    };
    let runs = match listed {
        Ok(runs) if runs.is_empty() => {
            return no(format!("no successful run of {} on {} yet", req.workflow, req.base));
        }
        Ok(runs) => runs,
        Err(e) => return no(format!("cannot list the runs of {} on {}: {e}", req.workflow, req.base)),
    };
    let mut passed_over = Vec::new();
    for run in runs {
        let path =
            format!("/repos/{owner}/{name}/actions/runs/{}/artifacts?name={}", run.id, percent::encode(&req.artifact));
        let id = match get_json(&client, &path).await.and_then(|v| artifact(&v, &req.artifact)) {
            Ok(id) => id,
            Err(why) => {
                passed_over.push(format!("run {}: {why}", run.id));
                continue;
            }
        };
        if !passed_over.is_empty() {
            progress(&format!("passed over newer runs: {}", passed_over.join("; ")));
        }
        let zip = match download(&client, &format!("/repos/{owner}/{name}/actions/artifacts/{id}/zip")).await {
            Ok(zip) => zip,
            Err(e) => return no(format!("cannot download artifact {} of run {}: {e}", req.artifact, run.id)),
        };
        let results = match results_from_zip(&zip) {
            Ok(r) => r,
            Err(e) => return no(format!("artifact {} of run {}: {e}", req.artifact, run.id)),
        };
        let file = write_results(&req.dir, &results)?;
        return Ok(Outcome::Found { run_id: run.id, run_url: run.url, path: file });
    }
    no(format!(
        "none of the last {} successful run(s) of {} on {} has artifact {} ({})",
        passed_over.len(),
        req.workflow,
        req.base,
        req.artifact,
        passed_over.join("; ")
    ))
}

fn write_results(dir: &Path, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = dir.join(RESULTS_FILE);
    std::fs::write(&file, bytes).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(file)
}

/// The body of a successful GET, or `STATUS message`.
async fn get(client: &Octocrab, path: &str) -> Result<(StatusCode, hyper::HeaderMap, Bytes), String> {
    let response = client._get(path).await.map_err(|e| error_chain(&e).replace('\n', " "))?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| error_chain(&e).replace('\n', " "))?.to_bytes();
    Ok((parts.status, parts.headers, body))
}

async fn get_json(client: &Octocrab, path: &str) -> Result<Value, String> {
    let (status, _, body) = get(client, path).await?;
    if !status.is_success() {
        return Err(status_line(status, &body));
    }
    serde_json::from_slice(&body).map_err(|e| format!("GitHub's answer is not JSON: {e}"))
}

/// An artifact's zip: GitHub answers with a redirect to short-lived storage. The client follows
/// it and sends the token only to GitHub's own origin; a `Location` left unfollowed (another
/// client's policy) is fetched here, where octocrab leaves the token off other hosts.
async fn download(client: &Octocrab, path: &str) -> Result<Bytes, String> {
    let (status, headers, body) = get(client, path).await?;
    if status.is_redirection() {
        let location = headers
            .get(hyper::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("{} without a Location", status.as_u16()))?
            .to_string();
        let (status, _, body) = get(client, &location).await?;
        return if status.is_success() { Ok(body) } else { Err(status_line(status, &body)) };
    }
    match status {
        StatusCode::GONE => Err("it has expired (410)".to_string()),
        s if s.is_success() => Ok(body),
        s => Err(status_line(s, &body)),
    }
}

fn status_line(status: StatusCode, body: &[u8]) -> String {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().chars().take(200).collect());
    format!("GitHub answered {} {message}", status.as_u16())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use serde_json::json;

    use super::*;

    #[test]
    fn the_workflow_file_comes_from_the_workflow_ref() {
        assert_eq!(
            workflow_file("acme/chaos/.github/workflows/chaos.yml@refs/pull/7/merge").as_deref(),
            Some("chaos.yml")
        );
        assert_eq!(workflow_file("acme/chaos/.github/workflows/a b.yaml@refs/heads/main").as_deref(), Some("a b.yaml"));
        assert_eq!(workflow_file(""), None);
        assert_eq!(workflow_file("acme/chaos/.github/workflows/@refs/heads/x"), None);
    }

    #[test]
    fn runs_are_read_newest_first_and_a_broken_answer_is_said() {
        let answer = json!({ "total_count": 2, "workflow_runs": [
            { "id": 9, "html_url": "https://github.com/acme/chaos/actions/runs/9" }, { "id": 4 } ] });
        assert_eq!(
            runs(&answer).unwrap(),
            [Run { id: 9, url: Some("https://github.com/acme/chaos/actions/runs/9".into()) }, Run { id: 4, url: None }]
        );
        assert_eq!(runs(&json!({ "message": "x" })).unwrap_err(), "no workflow_runs in the answer");
    }

    #[test]
    fn the_named_unexpired_artifact_is_chosen() {
        let answer = json!({ "artifacts": [
            { "id": 1, "name": "other", "expired": false },
            { "id": 2, "name": "chaos", "expired": true },
            { "id": 3, "name": "chaos", "expired": false } ] });
        assert_eq!(artifact(&answer, "chaos"), Ok(3));
        assert_eq!(artifact(&answer, "none").unwrap_err(), "no artifact of that name");
        let expired = json!({ "artifacts": [{ "id": 2, "name": "chaos", "expired": true }] });
        assert_eq!(artifact(&expired, "chaos").unwrap_err(), "its artifact has expired");
    }

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in files {
            w.start_file(*name, opts).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn results_json_is_taken_from_the_root_of_the_zip_and_checked() {
        let results = include_bytes!("../../tests/fixtures/results-all-pass.json").to_vec();
        let zip = zip_of(&[("report.md", b"# report"), (RESULTS_FILE, &results)]);
        assert_eq!(results_from_zip(&zip).unwrap(), results);

        let nested = zip_of(&[("out/results.json", &results)]);
        assert_eq!(results_from_zip(&nested).unwrap_err(), "the artifact has no results.json at its root");
        let junk = zip_of(&[(RESULTS_FILE, b"{\"not\": \"results\"}")]);
        assert_eq!(
            results_from_zip(&junk).unwrap_err(),
            "its results.json has no `version`: not a chronik-chaos results file"
        );
        assert!(results_from_zip(b"PK not really").unwrap_err().starts_with("the artifact is not a zip file"));
    }
}
