#!/usr/bin/env bash
# The composite action's steps (action.yml), one mode each:
#   names    the comment id and artifact name, derived per job (and matrix leg) unless given;
#   build    the harness alone (`cargo xtask harness`), with no token, for the baseline step;
#   baseline the base branch's results.json (`chronik-chaos baseline`), with the token, by the
#            harness the build step built: no cargo runs here;
#   run      `cargo xtask chaos` (against Chronik, or `--stand-in`), with no GitHub token in its
#            environment (Chronik's build scripts and the nodes run under it), and no comment
#            or job summary; with network netns, `--sudo`: the harness alone runs as root;
#   publish  the job summary and the sticky PR comment, with the token, by the harness the run
#            step built.
# Without a mode: `run`. Every input arrives through the environment (never interpolated into the
# script), is checked, and becomes one argument.
set -euo pipefail

fail() {
  echo "::error title=chronik-chaos::$1"
  exit 2
}

workspace="${GITHUB_WORKSPACE:-$PWD}"
abs() {
  case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$workspace/$1" ;;
  esac
}

output() {
  echo "$1=$2" >> "${GITHUB_OUTPUT:-/dev/null}"
}

# Letters, digits, `.`, `_` and `-` only; anything else becomes one `-`; no `-` or `.` at the ends.
slug() {
  printf '%s' "$1" | LC_ALL=C tr -c 'A-Za-z0-9._-' '-' | tr -s '-' | sed -e 's/^[-.]*//' -e 's/[-.]*$//'
}

# At most 64 characters: a longer name keeps its first 55 and gets 8 hex digits of its sha256,
# so two long names that differ only at the end stay apart.
bounded() {
  if [ "${#1}" -le 64 ]; then
    printf '%s\n' "$1"
  else
    local head hash
    head="$(printf '%s' "${1:0:55}" | sed -e 's/[-.]*$//')"
    hash="$(printf '%s' "$1" | sha256sum | cut -c1-8)"
    printf '%s-%s\n' "$head" "$hash"
  fi
}

valid_id() {
  [ "${#1}" -ge 1 ] && [ "${#1}" -le 64 ] && [[ "$1" =~ ^[A-Za-z0-9._-]+$ ]]
}

# The job's matrix leg: its values (toJSON(matrix), `null` without a matrix), else its index.
leg() {
  local matrix="${CHAOS_MATRIX:-}"
  case "$(printf '%s' "$matrix" | tr -d '[:space:]')" in
    '' | null | '{}') ;;
    *)
      slug "$matrix"
      return
      ;;
  esac
  if [ "${CHAOS_JOB_TOTAL:-1}" -gt 1 ] 2> /dev/null; then
    printf 'leg-%s' "${CHAOS_JOB_INDEX:-0}"
  fi
}

# `stand-in` is true or false; `stand-in-bug` (the stand-in's STAND_IN_BUG, a test knob) is
# names separated by commas and needs `stand-in: true`. The stand-in checks the names themselves.
# Sets `stand` to true or false.
stand_in() {
  local bug="$2"
  case "${1:-false}" in
    true) ;;
    false | '')
      [ -z "$bug" ] || fail "stand-in-bug '$bug' needs stand-in: true"
      stand=false
      return
      ;;
    *) fail "stand-in must be true or false, not '$1'" ;;
  esac
  if [ -n "$bug" ] && ! [[ "$bug" =~ ^[a-z0-9-]+(,[a-z0-9-]+)*$ ]]; then
    fail "stand-in-bug must be bug names (lower-case letters, digits and '-') separated by commas, not '$bug'"
  fi
  stand=true
}

names() {
  case "${CHAOS_COMMENT:-always}" in
    always | on-failure | never) ;;
    *) fail "comment must be always, on-failure or never, not '$CHAOS_COMMENT'" ;;
  esac
  local stand
  stand_in "${CHAOS_STAND_IN:-false}" "${CHAOS_STAND_IN_BUG:-}"
  if [ "$stand" = true ]; then
    echo "stand-in: the stand-in broker built with chronik-chaos, not Chronik${CHAOS_STAND_IN_BUG:+ (STAND_IN_BUG=$CHAOS_STAND_IN_BUG)}"
  fi
  local job leg comment_id artifact
  job="$(slug "${GITHUB_JOB:-job}")"
  leg="$(leg)"
  if [ -n "${CHAOS_COMMENT_ID:-}" ]; then
    comment_id="$CHAOS_COMMENT_ID"
    valid_id "$comment_id" || fail "comment-id must be 1 to 64 ASCII letters, digits, '.', '_' or '-', not '$comment_id'"
  else
    comment_id="$(slug "${GITHUB_WORKFLOW:-workflow}")-$job${leg:+-$leg}"
    comment_id="$(slug "$comment_id")"
    comment_id="$(bounded "${comment_id:-chronik-chaos}")"
  fi
  if [ -n "${CHAOS_ARTIFACT_NAME:-}" ]; then
    artifact="$CHAOS_ARTIFACT_NAME"
  else
    # Artifacts belong to one workflow run: the job and its leg tell them apart.
    artifact="$(bounded "chronik-chaos-$job${leg:+-$leg}")"
  fi
  echo "comment id: $comment_id"
  echo "artifact name: $artifact"
  output comment-id "$comment_id"
  output artifact-name "$artifact"
}

# Where `cargo xtask` builds the harness (xtask's target directory and profile).
harness_path() {
  local target="${CARGO_TARGET_DIR:-target}" profile=debug
  case "$target" in
    /*) ;;
    *) target="${GITHUB_ACTION_PATH:?}/$target" ;;
  esac
  if [ "${CHRONIK_CHAOS_PROFILE:-}" = release ]; then
    profile=release
  fi
  printf '%s\n' "$target/$profile/chronik-chaos"
}

# No credential reaches what cargo builds or runs.
drop_credentials() {
  unset GITHUB_TOKEN GH_TOKEN ACTIONS_ID_TOKEN_REQUEST_TOKEN ACTIONS_ID_TOKEN_REQUEST_URL ACTIONS_RUNTIME_TOKEN
}

build() {
  drop_credentials
  cd "${GITHUB_ACTION_PATH:?}"
  local harness
  if ! harness="$(cargo xtask harness | tail -n 1)" || [ ! -x "$harness" ]; then
    echo "::warning title=chronik-chaos::the harness did not build in this step; no comparison with the base branch (the run step builds it again and shows why)"
    exit 0
  fi
  echo "harness: $harness"
  output harness "$harness"
}

baseline() {
  local harness="${CHAOS_HARNESS:-}"
  if [ ! -x "$harness" ]; then
    echo "chronik-chaos baseline: no harness was built: no comparison with the base branch"
    exit 0
  fi
  # The harness writes the `baseline` output itself (GITHUB_OUTPUT) and says what it found. It
  # exits 0 for a comparison it cannot make; anything else must not fail the job either.
  if ! "$harness" baseline --artifact "${CHAOS_ARTIFACT_NAME:?}" --dir "${CHAOS_BASELINE_DIR:?}"; then
    echo "::warning title=chronik-chaos::the base-branch lookup failed (the reason is above); no comparison with the base branch"
  fi
}

run() {
  # Nothing Chronik builds or runs gets a credential (a token a job-level `env:` set, the OIDC
  # request pair) or the files that set later steps' environment and PATH. The job summary is
  # the publish step's. GITHUB_OUTPUT stays: the harness writes the step's outputs.
  drop_credentials
  unset GITHUB_ENV GITHUB_PATH GITHUB_STEP_SUMMARY

  local out
  out="$(abs "${CHAOS_OUT:?}")"
  args=(chaos --out "$out")
  output out-dir "$out"

  local stand
  stand_in "${CHAOS_STAND_IN:-false}" "${STAND_IN_BUG:-}"
  if [ "$stand" != true ]; then
    # Only the stand-in's nodes read it: a job-level env: must not switch bugs on elsewhere.
    unset STAND_IN_BUG
  elif [ -z "${STAND_IN_BUG:-}" ]; then
    unset STAND_IN_BUG
  else
    export STAND_IN_BUG
  fi

  case "${CHAOS_BUILD_PROFILE:-fast}" in
    fast | release) ;;
    *) fail "build-profile must be fast or release, not '$CHAOS_BUILD_PROFILE'" ;;
  esac
  if [ "$stand" = true ]; then
    # No Chronik: chronik-path, chronik-bin and build-profile do not apply.
    args+=(--stand-in)
  elif [ -n "${CHAOS_CHRONIK_BIN:-}" ]; then
    args+=(--chronik-bin "$(abs "$CHAOS_CHRONIK_BIN")" --profile "${CHAOS_BUILD_PROFILE:-fast}")
  else
    dir="$(abs "${CHAOS_CHRONIK_PATH:-.}")"
    [ -f "$dir/Cargo.toml" ] || fail "chronik-path '$CHAOS_CHRONIK_PATH' has no Cargo.toml: point it at a Chronik checkout (e.g. actions/checkout with path: chronik)"
    args+=(--chronik-dir "$dir" --profile "${CHAOS_BUILD_PROFILE:-fast}")
  fi

  # Scenario names: separated by commas, spaces or newlines.
  local scenarios="${CHAOS_SCENARIOS:-}"
  for name in ${scenarios//,/ }; do
    args+=(--scenario "$name")
  done
  if [ -n "${CHAOS_SCENARIOS_FILE:-}" ]; then
    args+=(--scenarios-file "$(abs "$CHAOS_SCENARIOS_FILE")")
  fi
  if [ -n "${CHAOS_SEED:-}" ]; then
    [[ "$CHAOS_SEED" =~ ^[0-9]+$ ]] || fail "seed must be a non-negative integer, not '$CHAOS_SEED'"
    args+=(--seed "$CHAOS_SEED")
  fi
  if [ -n "${CHAOS_BASELINE:-}" ]; then
    baseline="$(abs "$CHAOS_BASELINE")"
    if [ -f "$baseline" ]; then
      args+=(--baseline "$baseline")
    else
      echo "::warning title=chronik-chaos::baseline '$CHAOS_BASELINE' not found; the report has no deltas"
    fi
  fi
  # The publish step comments, with the token this step never sees.
  args+=(--comment never)
  case "${CHAOS_FAIL_ON:-any}" in
    any | safety | never) fail_on="${CHAOS_FAIL_ON:-any}" ;;
    *) fail "fail-on must be any, safety or never, not '$CHAOS_FAIL_ON'" ;;
  esac
  # network netns needs root: `--sudo` runs the harness alone through sudo (GitHub's runners
  # have passwordless sudo), never cargo or Chronik's build, and gives the output back.
  local network="${CHAOS_NETWORK:-proxy}" jobs="${CHAOS_JOBS:-1}"
  case "$network" in
    proxy | netns) ;;
    *) fail "network must be proxy or netns, not '$network'" ;;
  esac
  [[ "$jobs" =~ ^([1-9]|1[0-6])$ ]] || fail "jobs must be a whole number from 1 to 16, not '$jobs'"
  if [ "$jobs" -gt 1 ] && [ "$network" != netns ]; then
    fail "jobs above 1 needs network: netns"
  fi
  if [ "$network" = netns ]; then
    args+=(--sudo)
  fi
  args+=(-- --fail-on "$fail_on")
  if [ "$network" = netns ]; then
    args+=(--network netns)
  fi
  if [ "$jobs" -gt 1 ]; then
    args+=(--jobs "$jobs")
  fi
  if [ -n "${CHAOS_SHARD:-}" ]; then
    [[ "$CHAOS_SHARD" =~ ^[1-9][0-9]*/[1-9][0-9]*$ ]] || fail "shard must be K/N (e.g. 2/4), not '$CHAOS_SHARD'"
    [ -n "${CHAOS_SEED:-}" ] || fail "shard needs seed: every shard of one run must use the same seed"
    args+=(--shard "$CHAOS_SHARD")
  fi

  cd "${GITHUB_ACTION_PATH:?}"
  echo "cargo xtask ${args[*]}${STAND_IN_BUG:+ (STAND_IN_BUG=$STAND_IN_BUG)}"
  exec cargo xtask "${args[@]}"
}

publish() {
  local out report harness
  out="$(abs "${CHAOS_OUT:?}")"
  report="$out/report.md"
  if [ ! -f "$report" ]; then
    echo "::notice title=chronik-chaos::no report.md in $out (the run stopped before writing one); no job summary or PR comment"
    exit 0
  fi
  # The binary `cargo xtask` built in the run step (CHAOS_HARNESS: another one, for tests).
  harness="${CHAOS_HARNESS:-$(harness_path)}"
  if [ ! -x "$harness" ]; then
    echo "::warning title=chronik-chaos::the run step left no chronik-chaos binary; no job summary or PR comment"
    exit 0
  fi
  case "${CHAOS_COMMENT:-always}" in
    always | on-failure | never) ;;
    *) fail "comment must be always, on-failure or never, not '$CHAOS_COMMENT'" ;;
  esac
  valid_id "${CHAOS_COMMENT_ID:-}" || fail "comment-id must be 1 to 64 ASCII letters, digits, '.', '_' or '-', not '${CHAOS_COMMENT_ID:-}'"
  args=(comment --report "$report" --mode "${CHAOS_COMMENT:-always}" --comment-id "$CHAOS_COMMENT_ID" --summary always)
  if [ "${CHAOS_VERDICT:-}" != PASS ]; then
    args+=(--failed)
  fi
  if [ -n "${CHAOS_COMMENT_AUTHOR:-}" ]; then
    args+=(--comment-author "$CHAOS_COMMENT_AUTHOR")
  fi
  echo "chronik-chaos ${args[*]}"
  # The `summary-written` output: did the job summary grow? (A later step cannot read this
  # step's summary file, so the self-test checks this.)
  local before=0 after=0
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$GITHUB_STEP_SUMMARY" ]; then
    before="$(wc -c < "$GITHUB_STEP_SUMMARY")"
  fi
  # As inside `cargo xtask chaos`: a comment that cannot be written is a warning, never a failure.
  if ! "$harness" "${args[@]}"; then
    echo "::warning title=chronik-chaos PR comment::the comment or job summary could not be written (the reason is above)"
  fi
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$GITHUB_STEP_SUMMARY" ]; then
    after="$(wc -c < "$GITHUB_STEP_SUMMARY")"
  fi
  if [ "$after" -gt "$before" ]; then
    output summary-written true
  else
    output summary-written false
  fi
}

case "${1:-run}" in
  names) names ;;
  build) build ;;
  baseline) baseline ;;
  run) run ;;
  publish) publish ;;
  *) fail "unknown mode '$1' (names, build, baseline, run or publish)" ;;
esac
