#!/usr/bin/env bash
# Walk through Istio's "Mutual TLS Deep-Dive" against mtlsguard on a local
# control plane, with the real kubectl, printing each command before its
# output:
#
#   1. start etcd and kube-apiserver from bin/ (hack/localcp, via envtest) with
#      the Istio CRDs, a serving certificate and a kubeconfig in a temp dir;
#   2. start bin/mtlsguard and register manifests/base/webhook.yaml pointed at
#      it (https://127.0.0.1:PORT/validate/...);
#   3. apply sleep, httpbin and the mesh-wide STRICT policy and ISTIO_MUTUAL
#      rule, show tls-check;
#   4. apply bad-rule: denied; again with --dry-run=server: denied;
#   5. switch namespace default to audit mode: admitted with a Warning:;
#   6. delete bad-rule;
#   7. start a pod without a sidecar behind httpbin: the audit reports it
#      (kubectl get reports -A), and removes the report with the pod;
#      tear everything down.
#
# It exits non-zero as soon as a step does not behave as described (kubectl
# admitting bad-rule in enforce mode included). It builds no binaries: run it
# as `make demo`, which runs `make bin build` first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BIN:-${ROOT}/bin}"
cd "${ROOT}"

die() { echo "demo: $*" >&2; exit 1; }

for b in etcd kube-apiserver kubectl mtlsguard tls-check; do
  [[ -x "${BIN}/${b}" ]] || die "${BIN}/${b} is missing: run \`make bin build\` (or \`make demo\`)"
done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/mtlsguard-demo.XXXXXX")"
LOCALCP_PID=""
WEBHOOK_PID=""
cleanup() {
  local code=$?
  # Stop the webhook, then the control plane (localcp stops etcd and
  # kube-apiserver on SIGTERM); only the processes this script started.
  for pid in ${WEBHOOK_PID} ${LOCALCP_PID}; do
    kill "${pid}" 2>/dev/null || true
    wait "${pid}" 2>/dev/null || true
  done
  if [[ ${code} -ne 0 ]]; then
    for log in "${TMP}"/*.log; do
      [[ -s "${log}" ]] && { echo "--- ${log##*/} (last lines)"; tail -n 20 "${log}"; } >&2
    done
  fi
  rm -rf "${TMP}"
  exit "${code}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- control plane -----------------------------------------------------------
ISTIO_API="$(go list -m -f '{{.Dir}}' istio.io/api)"
[[ -n "${ISTIO_API}" ]] || ISTIO_API="$(go mod download -json istio.io/api | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
ISTIO_CRDS="${ISTIO_API}/kubernetes/customresourcedefinitions.gen.yaml"
[[ -f "${ISTIO_CRDS}" ]] || die "Istio CRDs not found at ${ISTIO_CRDS}"
# cert-manager's CRDs, so that manifests/certmanager could be applied too; the
# module is the one test/e2e pins.
CM_MOD="$(cd test/e2e && go mod download -json github.com/cert-manager/cert-manager | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
CM_CRDS="${CM_MOD}/deploy/crds"
[[ -d "${CM_CRDS}" ]] || die "cert-manager CRDs not found at ${CM_CRDS}"
# The OpenReports Report CRD, where the audit publishes (a prerequisite that
# mtlsguard's manifests do not install).
OR_MOD="$(go list -m -f '{{.Dir}}' github.com/openreports/reports-api)"
[[ -n "${OR_MOD}" ]] || OR_MOD="$(go mod download -json github.com/openreports/reports-api | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
OR_CRD="${OR_MOD}/config/crd/openreports.io_reports.yaml"
[[ -f "${OR_CRD}" ]] || die "OpenReports CRD not found at ${OR_CRD}"

(cd hack/localcp && GOWORK=off go build -o "${TMP}/localcp" .)
"${TMP}/localcp" -bin "${BIN}" -dir "${TMP}" -crds "${ISTIO_CRDS}" -crds "${CM_CRDS}" -crds "${OR_CRD}" \
  -webhook-config manifests/base/webhook.yaml >"${TMP}/localcp.log" 2>&1 &
LOCALCP_PID=$!

echo "Starting etcd and kube-apiserver from ${BIN#"${ROOT}/"}/, with the Istio, cert-manager and OpenReports CRDs ..."
for _ in $(seq 600); do
  [[ -f "${TMP}/ready" ]] && break
  kill -0 "${LOCALCP_PID}" 2>/dev/null || die "the control plane did not start"
  sleep 0.1
done
[[ -f "${TMP}/ready" ]] || die "the control plane did not start within 60s"
# shellcheck source=/dev/null
source "${TMP}/ports.env"
export KUBECONFIG="${TMP}/kubeconfig"
export PATH="${BIN}:${PATH}"

# --- webhook -----------------------------------------------------------------
mtlsguard --kubeconfig "${KUBECONFIG}" --cert-dir "${TMP}/certs" \
  --webhook-host 127.0.0.1 --webhook-port "${WEBHOOK_PORT}" \
  --health-probe-bind-address "127.0.0.1:${HEALTH_PORT}" \
  --metrics-bind-address "127.0.0.1:${METRICS_PORT}" \
  --leader-election-namespace default >"${TMP}/mtlsguard.log" 2>&1 &
WEBHOOK_PID=$!

# ready: GET /readyz answers 200 (bash's /dev/tcp: no curl needed).
ready() (
  exec 3<>"/dev/tcp/127.0.0.1/${HEALTH_PORT}" || exit 1
  printf 'GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
  read -r -t 2 _ status _ <&3 || exit 1
  [[ "${status}" == 200 ]]
) 2>/dev/null
echo "Starting mtlsguard on https://127.0.0.1:${WEBHOOK_PORT} ..."
for _ in $(seq 300); do
  ready && break
  kill -0 "${WEBHOOK_PID}" 2>/dev/null || die "mtlsguard exited"
  sleep 0.1
done
ready || die "mtlsguard did not turn ready within 30s"

# --- walkthrough -------------------------------------------------------------
STEP=0
step() { STEP=$((STEP + 1)); printf '\n# %d. %s\n' "${STEP}" "$*"; }

# run CMD...: print and run CMD; it must succeed.
run() {
  echo "\$ $*"
  "$@" || die "\`$*\` failed (exit $?)"
}

# denied CMD...: print and run CMD; it must fail with mtlsguard's CONFLICT.
denied() {
  echo "\$ $*"
  local code=0
  "$@" >"${TMP}/out" 2>&1 || code=$?
  cat "${TMP}/out"
  [[ ${code} -ne 0 ]] || die "\`$*\` succeeded; mtlsguard should have denied it"
  grep -q CONFLICT "${TMP}/out" || die "\`$*\` failed, but not with mtlsguard's CONFLICT"
}

# warned CMD...: print and run CMD; it must succeed with a Warning: line
# carrying the CONFLICT.
warned() {
  echo "\$ $*"
  local code=0
  "$@" >"${TMP}/out" 2>&1 || code=$?
  cat "${TMP}/out"
  [[ ${code} -eq 0 ]] || die "\`$*\` failed (exit ${code}); audit mode should admit it"
  grep -q '^Warning: .*CONFLICT' "${TMP}/out" || die "\`$*\` printed no Warning: line with the CONFLICT"
}

# settle CMD...: wait (silently, up to 10s) until CMD succeeds. The webhook
# decides from its informer cache, which trails the API server by a moment.
# If it never does, the step after it fails and says why.
settle() {
  for _ in $(seq 100); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
}
would_deny() { ! kubectl apply --dry-run=server -f "$1"; }
has_report() { kubectl get report -n default mtlsguard >/dev/null 2>&1; }
no_report() { ! has_report; }
BAD_RULE=examples/deep-dive/bad-rule/bad-rule.yaml
LEGACY_POD=examples/audit/httpbin-no-sidecar.yaml

step "Register mtlsguard (manifests/base/webhook.yaml, pointed at the local process)"
run kubectl apply -f "${TMP}/webhook.yaml"

step "Deploy sleep and httpbin with sidecars, then enable mutual TLS mesh-wide"
# Server-side apply: the file also labels namespace default, which the API
# server created, and client-side apply would warn that it lacks kubectl's
# last-applied annotation -- not the kind of Warning: this demo is about.
run kubectl apply --server-side -f examples/deep-dive/workloads.yaml
run kubectl apply -f examples/deep-dive/mesh-mtls.yaml

step "Check the TLS settings sleep sees for httpbin"
run tls-check sleep.default httpbin.default.svc.cluster.local

step "Apply the Deep-Dive's bad-rule (tls.mode DISABLE towards a STRICT server): denied"
settle would_deny "${BAD_RULE}"
denied kubectl apply -f "${BAD_RULE}"

step "Server-side dry-run gets the same answer"
denied kubectl apply --dry-run=server -f "${BAD_RULE}"

step "Audit mode for namespace default: admitted, with a warning"
run kubectl label namespace default mtlsguard.io/mode=audit
settle kubectl apply --dry-run=server -f "${BAD_RULE}"
warned kubectl apply -f "${BAD_RULE}"
run tls-check sleep.default httpbin.default.svc.cluster.local

step "Clean up"
run kubectl delete -f "${BAD_RULE}"
settle no_report

step "The audit: a pod without a sidecar joins httpbin, which sleep reaches with ISTIO_MUTUAL"
run kubectl apply -f "${LEGACY_POD}"
settle has_report
has_report || die "no report in namespace default within 10s"
run kubectl get reports -A
run kubectl get report -n default mtlsguard -o jsonpath='{range .results[*]}{.result}{"  "}{.properties.service}{"  "}{.message}{"\n"}{end}'
run kubectl delete -f "${LEGACY_POD}"
settle no_report
no_report || die "the report in namespace default outlived its conflict by 10s"
run kubectl get reports -A

printf '\nDemo finished: every step behaved as described.\n'
