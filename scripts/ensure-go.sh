#!/usr/bin/env bash
# The Go consumer example builds from Debian packages only (no Go module proxy is reachable from CI):
# the toolchain, the AMQP 0-9-1 client and a msgpack library. Installs them when missing (root or sudo);
# exits 0 either way so `make test` can report a clear skip where they cannot be installed.
set -euo pipefail
PACKAGES=(golang-go golang-github-rabbitmq-amqp091-go-dev golang-github-vmihailenco-msgpack.v5-dev)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "ensure-go: no apt-get here; the Go agent test will be skipped (needs: ${missing[*]})" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "ensure-go: not root and no sudo; the Go agent test will be skipped (needs: ${missing[*]})" >&2
    exit 0
  fi
fi
APT=($SUDO apt-get -o DPkg::Lock::Timeout=300 -y -q)
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet.
"${APT[@]}" install --no-install-recommends "${missing[@]}" \
  || { "${APT[@]}" update && "${APT[@]}" install --no-install-recommends "${missing[@]}"; } \
  || echo "ensure-go: could not install ${missing[*]}; the Go agent test will be skipped" >&2
