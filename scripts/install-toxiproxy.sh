#!/usr/bin/env bash
# Installs the official toxiproxy-server release binary into DIR (default: ./bin), after
# checking its SHA-256 against scripts/toxiproxy.sha256 (committed in this repository).
#
# Usage: scripts/install-toxiproxy.sh [DIR]
# Environment:
#   TOXIPROXY_VERSION   release to install (default 2.12.0); must be listed in toxiproxy.sha256
#   TOXIPROXY_BASE_URL  where releases are downloaded from
#                       (default https://github.com/Shopify/toxiproxy/releases/download)
#   TOXIPROXY_CHECKSUMS checksum file to use instead of the committed one (for tests)
# Prints the installed binary's path on the last line. Exit 0 installed, 1 failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="${TOXIPROXY_VERSION:-2.12.0}"
version="${version#v}"
base_url="${TOXIPROXY_BASE_URL:-https://github.com/Shopify/toxiproxy/releases/download}"
dest="${1:-bin}"
checksums="${TOXIPROXY_CHECKSUMS:-$here/toxiproxy.sha256}"

case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) echo "install-toxiproxy: unsupported OS $(uname -s); install toxiproxy-server yourself and set TOXIPROXY_BIN" >&2; exit 1 ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "install-toxiproxy: unsupported CPU $(uname -m); install toxiproxy-server yourself and set TOXIPROXY_BIN" >&2; exit 1 ;;
esac

name="toxiproxy-server-${version}-${os}-${arch}"
expected="$(awk -v n="$name" '$2 == n { print $1 }' "$checksums")"
if [ -z "$expected" ]; then
  known="$(awk '/^[0-9a-f]/ { sub(/^toxiproxy-server-/, "", $2); print $2 }' "$checksums" | tr '\n' ' ')"
  echo "install-toxiproxy: no committed checksum for $name in $checksums." >&2
  echo "  Known: $known" >&2
  echo "  Pick one of those versions, or add the release's checksum to scripts/toxiproxy.sha256." >&2
  exit 1
fi

url="$base_url/v$version/toxiproxy-server-$os-$arch"
mkdir -p "$dest"
tmp="$(mktemp "$dest/.toxiproxy-server.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
echo "install-toxiproxy: downloading $url" >&2
curl --fail --silent --show-error --location \
  --retry 5 --retry-delay 3 --retry-all-errors --connect-timeout 20 --max-time 300 \
  --output "$tmp" "$url"

if command -v sha256sum > /dev/null; then
  actual="$(sha256sum "$tmp" | awk '{ print $1 }')"
else
  actual="$(shasum -a 256 "$tmp" | awk '{ print $1 }')"
fi
if [ "$actual" != "$expected" ]; then
  echo "install-toxiproxy: checksum mismatch for $url" >&2
  echo "  expected $expected ($checksums)" >&2
  echo "  got      $actual" >&2
  echo "  The download was discarded; nothing was installed." >&2
  exit 1
fi

chmod 0755 "$tmp"
mv -f "$tmp" "$dest/toxiproxy-server"
trap - EXIT
echo "install-toxiproxy: $name verified (sha256 $expected)" >&2
cd "$dest" && echo "$(pwd)/toxiproxy-server"
