#!/usr/bin/env bash
# Fetch promtool into $1 (default .tools/bin) from Debian's `prometheus` package without installing or
# starting the Prometheus server: download the .deb and unpack only its files.
set -euo pipefail
dest=${1:-.tools/bin}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
[ -x "$dest/promtool" ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(
  cd "$tmp"
  # apt-get download needs package lists; a fresh machine may have none.
  apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus >/dev/null; }
  dpkg-deb -x prometheus_*.deb root
  cp root/usr/bin/promtool "$dest/promtool"
)
"$dest/promtool" --version | head -1
