#!/usr/bin/env bash
# Fetch the official AsyncAPI 3.0.0 JSON Schema (self-contained variant) into $1 (default
# .tools/asyncapi/3.0.0.json) from the npm registry's @asyncapi/specs package, pinned.
set -euo pipefail
dest=${1:-.tools/asyncapi/3.0.0.json}
[ -s "$dest" ] && exit 0
mkdir -p "$(dirname "$dest")"
dest=$(cd "$(dirname "$dest")" && pwd)/$(basename "$dest")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(
  cd "$tmp"
  npm pack -q @asyncapi/specs@6.11.1 >/dev/null
  tar xzf asyncapi-specs-6.11.1.tgz 'package/schemas/3.0.0-without-$id.json'
  cp 'package/schemas/3.0.0-without-$id.json' "$dest"
)
echo "AsyncAPI 3.0.0 schema: $dest"
