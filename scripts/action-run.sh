#!/usr/bin/env bash
# Runs `cargo xtask chaos` for the composite action (action.yml). Every input arrives through
# the environment (never interpolated into the script), is checked, and becomes one argument.
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

out="$(abs "${CHAOS_OUT:?}")"
args=(chaos --out "$out")
echo "out-dir=$out" >> "${GITHUB_OUTPUT:-/dev/null}"

if [ -n "${CHAOS_CHRONIK_BIN:-}" ]; then
  args+=(--chronik-bin "$(abs "$CHAOS_CHRONIK_BIN")")
else
  dir="$(abs "${CHAOS_CHRONIK_PATH:-.}")"
  [ -f "$dir/Cargo.toml" ] || fail "chronik-path '$CHAOS_CHRONIK_PATH' has no Cargo.toml: point it at a Chronik checkout (e.g. actions/checkout with path: chronik)"
  args+=(--chronik-dir "$dir")
fi

case "${CHAOS_BUILD_PROFILE:-fast}" in
  fast | release) args+=(--profile "${CHAOS_BUILD_PROFILE:-fast}") ;;
  *) fail "build-profile must be fast or release, not '$CHAOS_BUILD_PROFILE'" ;;
esac

# Scenario names: separated by commas, spaces or newlines.
for name in ${CHAOS_SCENARIOS//,/ }; do
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
case "${CHAOS_COMMENT:-always}" in
  always | on-failure | never) args+=(--comment "${CHAOS_COMMENT:-always}") ;;
  *) fail "comment must be always, on-failure or never, not '$CHAOS_COMMENT'" ;;
esac
case "${CHAOS_FAIL_ON:-any}" in
  any | safety | never) fail_on="${CHAOS_FAIL_ON:-any}" ;;
  *) fail "fail-on must be any, safety or never, not '$CHAOS_FAIL_ON'" ;;
esac
args+=(-- --fail-on "$fail_on")

cd "${GITHUB_ACTION_PATH:?}"
echo "cargo xtask ${args[*]}"
cargo xtask "${args[@]}"
