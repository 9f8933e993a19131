#!/usr/bin/env bash
# The composite action's base-branch comparison: on a pull request, finds the latest successful
# run of the same workflow on the base branch, downloads the artifact this job uploads there
# (same name), and writes `baseline=<its results.json>` to $GITHUB_OUTPUT for the run step's
# --baseline. Anything missing (not a pull request, no such run, no such artifact, no
# results.json in it) is said in one line and is never a failure: the report then has no
# comparison. Uses the GitHub CLI (`gh`, present on GitHub's runners) with GH_TOKEN.
#
# Environment: GITHUB_REPOSITORY, GITHUB_BASE_REF, GITHUB_WORKFLOW_REF, CHAOS_ARTIFACT_NAME,
# CHAOS_BASELINE_DIR (where the artifact is unpacked), GH_TOKEN, GITHUB_OUTPUT.
set -euo pipefail

say() {
  echo "chronik-chaos baseline: $1"
}

base="${GITHUB_BASE_REF:-}"
if [ -z "$base" ]; then
  say "not a pull request: no base branch to compare with"
  exit 0
fi
repo="${GITHUB_REPOSITORY:?GITHUB_REPOSITORY is not set}"
artifact="${CHAOS_ARTIFACT_NAME:?CHAOS_ARTIFACT_NAME is not set}"
dir="${CHAOS_BASELINE_DIR:?CHAOS_BASELINE_DIR is not set}"
# `owner/repo/.github/workflows/chaos.yml@refs/pull/7/merge` -> `chaos.yml`
workflow_ref="${GITHUB_WORKFLOW_REF:?GITHUB_WORKFLOW_REF is not set}"
workflow="${workflow_ref%%@*}"
workflow="${workflow##*/}"
if ! command -v gh > /dev/null; then
  say "the GitHub CLI (gh) is not installed: no comparison with $base"
  exit 0
fi

err="$(mktemp)"
trap 'rm -f "$err"' EXIT
if ! run="$(gh run list --repo "$repo" --workflow "$workflow" --branch "$base" --status success \
  --limit 1 --json databaseId --jq '.[0].databaseId // empty' 2> "$err")"; then
  say "could not list runs of $workflow on $base ($(head -c 300 "$err" | tr '\n' ' ')): no comparison"
  exit 0
fi
if [ -z "$run" ]; then
  say "no successful run of $workflow on $base yet: no comparison"
  exit 0
fi
rm -rf "$dir"
mkdir -p "$dir"
if ! gh run download "$run" --repo "$repo" --name "$artifact" --dir "$dir" 2> "$err"; then
  say "run $run of $workflow on $base has no artifact $artifact ($(head -c 300 "$err" | tr '\n' ' ')): no comparison"
  exit 0
fi
if [ ! -s "$dir/results.json" ]; then
  say "artifact $artifact of run $run has no results.json: no comparison"
  exit 0
fi
say "comparing with run $run of $workflow on $base (artifact $artifact)"
echo "baseline=$dir/results.json" >> "${GITHUB_OUTPUT:-/dev/null}"
