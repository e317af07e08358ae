#!/usr/bin/env bash
# Build kube-apiserver, kubectl and etcd from source, at the versions pinned in
# hack/tools/kube/go.mod and hack/tools/etcd/go.mod, into an output directory
# (default: bin/ at the repo root). These are the binaries envtest needs
# (KUBEBUILDER_ASSETS / envtest.Environment.BinaryAssetsDirectory). helm, for
# the chart's tests, comes from hack/tools/helm/go.mod the same way.
#
# A binary is rebuilt only when it is missing or older than its tool module's
# go.mod, so a second run is a fast no-op. Needs only Go and the module proxy.
#
# Usage: hack/build-apiserver.sh [OUTPUT_DIR]
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${REPO_ROOT}/hack/tools"

OUT_DIR="${1:-${REPO_ROOT}/bin}"
mkdir -p "${OUT_DIR}"
OUT_DIR="$(cd "${OUT_DIR}" && pwd)"

# The tool modules are standalone: never let a go.work elsewhere pull them in.
export GOWORK=off
export CGO_ENABLED=0

# needs_build BINARY GO_MOD: true if BINARY is missing or older than GO_MOD.
needs_build() {
  [[ ! -x "$1" || "$2" -nt "$1" ]]
}

# build MODULE_DIR BINARY_NAME PACKAGE [extra go build args...]
build() {
  local mod_dir="$1" name="$2" pkg="$3"
  shift 3
  local out="${OUT_DIR}/${name}"
  if ! needs_build "${out}" "${mod_dir}/go.mod"; then
    return 0
  fi
  local start=${SECONDS}
  # Build to a temp name and rename, so an interrupted build never leaves a
  # truncated binary that looks up to date.
  (cd "${mod_dir}" && go build -trimpath -buildvcs=false "$@" -o "${out}.tmp" "${pkg}")
  mv -f "${out}.tmp" "${out}"
  echo "built ${out} ($(cd "${mod_dir}" && go list -m -f '{{.Path}} {{.Version}}' "$(module_of "${pkg}")"), $((SECONDS - start))s)"
}

# module_of PACKAGE: the module path that provides PACKAGE (for the message).
module_of() {
  case "$1" in
    k8s.io/kubernetes/*) echo k8s.io/kubernetes ;;
    go.etcd.io/etcd/server/v3*) echo go.etcd.io/etcd/server/v3 ;;
    helm.sh/helm/v4/*) echo helm.sh/helm/v4 ;;
  esac
}

# --- Kubernetes: kube-apiserver, kubectl -------------------------------------
KUBE_MOD="${TOOLS_DIR}/kube"
if needs_build "${OUT_DIR}/kube-apiserver" "${KUBE_MOD}/go.mod" ||
   needs_build "${OUT_DIR}/kubectl" "${KUBE_MOD}/go.mod"; then
  # Stamp the version the way upstream's hack/lib/version.sh does; without it
  # the binaries report v0.0.0-master. buildDate is the tag's time, so the
  # build is reproducible.
  read -r KUBE_VERSION KUBE_TIME < <(cd "${KUBE_MOD}" &&
    go list -m -f '{{.Version}} {{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)
  if [[ ! "${KUBE_VERSION}" =~ ^v([0-9]+)\.([0-9]+)\. ]]; then
    echo "unexpected k8s.io/kubernetes version ${KUBE_VERSION}" >&2
    exit 1
  fi
  kube_ldflags="-s -w"
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    kube_ldflags+=" -X ${pkg}.gitVersion=${KUBE_VERSION}"
    kube_ldflags+=" -X ${pkg}.gitMajor=${BASH_REMATCH[1]}"
    kube_ldflags+=" -X ${pkg}.gitMinor=${BASH_REMATCH[2]}"
    kube_ldflags+=" -X ${pkg}.gitTreeState=clean"
    kube_ldflags+=" -X ${pkg}.buildDate=${KUBE_TIME}"
  done
  build "${KUBE_MOD}" kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver -ldflags "${kube_ldflags}"
  build "${KUBE_MOD}" kubectl k8s.io/kubernetes/cmd/kubectl -ldflags "${kube_ldflags}"
fi

# --- etcd ----------------------------------------------------------------------
# go.etcd.io/etcd/server/v3 ships its own main package (a wrapper around
# etcdmain.Main(os.Args)); build that rather than a copy of it.
build "${TOOLS_DIR}/etcd" etcd go.etcd.io/etcd/server/v3 -ldflags "-s -w"

# --- helm ------------------------------------------------------------------------
# Stamped with its version as upstream's Makefile does for a tagged build;
# without it `helm version` reports a bare "v4.x".
HELM_MOD="${TOOLS_DIR}/helm"
if needs_build "${OUT_DIR}/helm" "${HELM_MOD}/go.mod"; then
  HELM_VERSION="$(cd "${HELM_MOD}" && go list -m -f '{{.Version}}' helm.sh/helm/v4)"
  build "${HELM_MOD}" helm helm.sh/helm/v4/cmd/helm \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
fi
