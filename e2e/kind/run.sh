#!/usr/bin/env bash
# The e2e user journeys on a real Kubernetes cluster (kind), where a Docker engine exists:
#   1. create a kind cluster (one node; its kubeconfig in a temp dir, ~/.kube/config untouched);
#   2. build the operator image (operator/Dockerfile) and load it into the cluster;
#   3. helm install helm/superpod-operator (one replica, on the kind node, the image just loaded);
#   4. start a simulated CloudMatrix 384 as 48 fake Nodes with their device-plugin ConfigMaps, a kubelet and
#      device-plugin stand-in and an NPU-Exporter (`superpod sim up --no-bind`: kube-scheduler binds the pods);
#   5. port-forward the operator's metrics and run e2e/test_journeys.py with E2E_KUBECONFIG pointing at kind.
# The cluster is deleted at the end unless KEEP_CLUSTER=1; on failure kind's logs, the operator's log and the
# simulator's log are left in $LOGS. See docs/e2e.md.
#
# Environment (all optional): CLUSTER (kind cluster name, default superpod-e2e), IMAGE (tag to build),
# KIND, KUBECTL, HELM, DOCKER, PYTHON (the tools to use), KIND_NODE_IMAGE (e.g. kindest/node:v1.35.0),
# LOGS (where logs go, default out/e2e-kind), KEEP_CLUSTER=1, PYTEST_ARGS (extra pytest arguments).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLUSTER=${CLUSTER:-superpod-e2e}
IMAGE=${IMAGE:-ghcr.io/superpod-dev/superpod-operator:e2e}
KIND=${KIND:-kind}
DOCKER=${DOCKER:-docker}
KUBECTL=${KUBECTL:-$ROOT/.tools/bin/kubectl}
HELM=${HELM:-$ROOT/.tools/bin/helm}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
LOGS=${LOGS:-$ROOT/out/e2e-kind}
NAMESPACE=superpod-system
RELEASE=superpod-operator
EXPORTER_PORT=${EXPORTER_PORT:-19400}
METRICS_PORT=${METRICS_PORT:-18080}

WORK=$(mktemp -d)
export KUBECONFIG=$WORK/kubeconfig
mkdir -p "$LOGS"
background=()

log() { printf '\n==> %s\n' "$*"; }

cleanup() {
  local status=$?
  for pid in "${background[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ "$status" -ne 0 ]; then
    echo "e2e on kind failed (exit $status); logs in $LOGS" >&2
    "$KUBECTL" -n "$NAMESPACE" logs "deployment/$RELEASE" --all-containers >"$LOGS/operator.log" 2>&1 || true
    "$KIND" export logs "$LOGS/kind" --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  if [ "${KEEP_CLUSTER:-0}" = 1 ]; then
    echo "kept kind cluster $CLUSTER; KUBECONFIG=$KUBECONFIG"
  else
    "$KIND" delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT

for tool in "$KIND" "$DOCKER" "$KUBECTL" "$HELM" "$PYTHON"; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 2; }
done

log "kind cluster $CLUSTER"
node_image=()
if [ -n "${KIND_NODE_IMAGE:-}" ]; then
  node_image=(--image "$KIND_NODE_IMAGE")
fi
"$KIND" create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" --wait 180s "${node_image[@]}"
kind_node="$CLUSTER-control-plane"

log "image $IMAGE"
"$DOCKER" build --file "$ROOT/operator/Dockerfile" --tag "$IMAGE" "$ROOT"
"$KIND" load docker-image "$IMAGE" --name "$CLUSTER"

log "helm install $RELEASE"
# One replica pinned to the kind node: the fake nodes the simulator adds later must never run the operator.
"$HELM" install "$RELEASE" "$ROOT/helm/superpod-operator" \
  --namespace "$NAMESPACE" --create-namespace \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=Never \
  --set replicaCount=1 --set podDisruptionBudget.enabled=false \
  --set-string "nodeSelector.kubernetes\.io/hostname=$kind_node" \
  --wait --timeout 5m
"$KUBECTL" -n "$NAMESPACE" rollout status "deployment/$RELEASE" --timeout=180s

log "simulated fleet (superpod sim up)"
# --no-bind: kube-scheduler binds the pods (to the node the admission webhook pinned them to);
# 10 s heartbeats keep the fake nodes Ready for the node lifecycle controller (its grace period is 40 s).
"$PYTHON" -m superpod.cli sim up --kubeconfig "$KUBECONFIG" --profile cloudmatrix-384 --no-bind \
  --heartbeat-seconds 10 --metrics-port "$EXPORTER_PORT" >"$LOGS/sim.log" 2>&1 &
background+=("$!")
for _ in $(seq 1 120); do
  grep -q "^running" "$LOGS/sim.log" && break
  kill -0 "${background[-1]}" 2>/dev/null || { cat "$LOGS/sim.log" >&2; exit 1; }
  sleep 1
done
grep -q "^running" "$LOGS/sim.log" || { echo "the simulated fleet did not start" >&2; exit 1; }

log "operator metrics on 127.0.0.1:$METRICS_PORT"
"$KUBECTL" -n "$NAMESPACE" port-forward "service/$RELEASE" "$METRICS_PORT:8080" >"$LOGS/port-forward.log" 2>&1 &
background+=("$!")
for _ in $(seq 1 30); do
  curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" >/dev/null 2>&1 && break
  sleep 1
done

log "e2e journeys"
cd "$ROOT"
# PYTEST_ARGS is split on purpose: it carries several arguments.
# shellcheck disable=SC2086
E2E_KUBECONFIG=$KUBECONFIG \
E2E_EXPORTER_URL="http://127.0.0.1:$EXPORTER_PORT/metrics" \
E2E_OPERATOR_METRICS_URL="http://127.0.0.1:$METRICS_PORT/metrics" \
E2E_KUBECTL=$KUBECTL \
  "$PYTHON" -m pytest -p no:cacheprovider -v e2e/test_journeys.py ${PYTEST_ARGS:-}
