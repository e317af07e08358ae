# mtlsguard — see README.md. `make help` lists the targets.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN        ?= $(CURDIR)/bin
DIST       ?= $(CURDIR)/dist
GO         ?= go
IMG        ?= mtlsguard:dev
# Release version for image labels, archive names and the krew manifest;
# empty: git describe, else a Go-style pseudo-version of HEAD.
VERSION    ?=
# Where the archives of make dist are published, for the krew manifest's
# uris; empty: the project's release download URL of VERSION.
KREW_URL_BASE ?=
export KUBEBUILDER_ASSETS := $(BIN)

# The flags of every shipped binary: static, reproducible, stripped. The
# Dockerfile and hack/release build with the same (TestBuildFlagsAgree).
GO_BUILD_FLAGS := -trimpath -buildvcs=false -ldflags='-s -w'

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: fmt
fmt: ## gofmt every Go file.
	gofmt -w $$(git ls-files '*.go')

# Modules beside the product's: the e2e test, the conformance oracle, the
# demo's control plane, the release tool. Those with a .maketest file run in
# make test.
SUBMODULES := $(shell find test hack -name go.mod -not -path '*/testdata/*' -not -path 'hack/tools/*' -printf '%h\n' | sort)
# Vetting test/conformance compiles all of Istio (~20 minutes cold on two
# cores) before any test runs; its tests get go test's own vet checks when
# they run, and make vet-all vets it in full.
ISTIO_MODULES := test/conformance

.PHONY: vet
vet: ## go vet the product and every module but the Istio oracle's, and fail on unformatted files.
	$(GO) vet ./...
	@for m in $(filter-out $(ISTIO_MODULES),$(SUBMODULES)); do (cd $$m && $(GO) vet ./...) || exit 1; done
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: vet-all
vet-all: vet ## vet the Istio-based conformance module too (compiles Istio).
	@for m in $(ISTIO_MODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done

.PHONY: build
build: ## Build mtlsguard and tls-check into bin/.
	CGO_ENABLED=0 $(GO) build $(GO_BUILD_FLAGS) -o $(BIN)/mtlsguard ./cmd/mtlsguard
	CGO_ENABLED=0 $(GO) build $(GO_BUILD_FLAGS) -o $(BIN)/tls-check ./cmd/tls-check
	ln -sf tls-check $(BIN)/kubectl-tls_check

.PHONY: bin
bin: ## Build kube-apiserver, etcd, kubectl and helm from source into bin/ (only when missing).
	hack/build-apiserver.sh $(BIN)

# The conformance oracle: Istio's control plane, the one build that
# test/agreement runs (make passes it in MTLSGUARD_ORACLE); relinked only when
# its module changes. Built with go test's settings (cgo as the machine has
# it), so the Istio packages compiled for it serve test/conformance's own
# tests too.
ORACLE := $(BIN)/oracle
$(ORACLE): $(shell find test/conformance -name '*.go' -not -path '*/testdata/*') test/conformance/go.mod test/conformance/go.sum
	cd test/conformance && $(GO) build -o $@ ./cmd/oracle

.PHONY: oracle
oracle: $(ORACLE) ## Build the conformance oracle into bin/ (compiles Istio: ~20 min cold).

# Everything that does not need Istio runs first; the Istio build comes last,
# behind the two tests that need it.
.PHONY: test
test: vet bin build ## Vet, then run every test: unit, golden, integration, e2e, image/release, then conformance.
	$(GO) test -race ./policy/... ./webhook/...
	$(GO) test -count=1 -skip '^(TestAgreement|TestSustainedLoad)$$' ./...
	$(GO) test -race -count=1 ./test/load/ -args -duration=$(LOAD_DURATION)
	$(MAKE) -s test-submodules
	$(MAKE) -s test-conformance

# The edit-test loop: go test's result cache keeps what did not change.
.PHONY: test-short
test-short: bin ## Unit, golden and integration tests once: no e2e, no conformance, no image (under a minute warm).
	$(GO) test $$($(GO) list ./... | grep -v -e /test/agreement -e /test/load)

.PHONY: test-conformance
test-conformance: $(ORACLE) ## The engine against Istio on 300 generated meshes, and the oracle's own tests.
	MTLSGUARD_ORACLE=$(ORACLE) $(GO) test -count=1 -run '^TestAgreement$$' ./test/agreement/
	@for m in $(ISTIO_MODULES); do echo "== $$m"; (cd $$m && $(GO) test -count=1 ./...) || exit 1; done

# -count=1: these tests read bin/, manifests/ and examples/, which go test's
# result cache does not track.
.PHONY: test-submodules
test-submodules:
	@for m in $(filter-out $(ISTIO_MODULES),$(SUBMODULES)); do \
		if [ -f "$$m/.maketest" ]; then echo "== $$m"; (cd $$m && $(GO) test -count=1 ./...) || exit 1; fi; \
	done

# The fuzz targets, package and name; make test runs their seed corpora
# (f.Add and testdata/fuzz) as plain tests. See docs/reliability.md.
FUZZ_TARGETS := policy:FuzzDecide policy:FuzzApplyRemove internal/tlscheck:FuzzLoad webhook:FuzzAdmission
FUZZTIME     ?= 60s
# One worker: the project machine is shared; raise it on your own.
FUZZFLAGS    ?= -parallel=1

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 60s); new crashers land in the package's testdata/fuzz.
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; echo "== $$pkg $$name"; \
		$(GO) test ./$$pkg/ -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) || exit 1; \
	done

.PHONY: update-golden
update-golden: ## Rewrite policy/testdata golden files.
	$(GO) test ./policy/ -run TestScenarios -update

.PHONY: bench
bench: ## Run the engine benchmarks (see docs/performance.md).
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 20x ./policy/

# How long test/load's 200 clients write in make test (docs/reliability.md
# records a 60s run: make load LOAD_DURATION=60s).
LOAD_DURATION ?= 10s

.PHONY: load
load: bin ## 200 clients write for LOAD_DURATION against the webhook under -race; p50/p99 (see docs/reliability.md).
	$(GO) test -race -count=1 -timeout 0 -v -run TestSustainedLoad ./test/load/ -args -duration=$(LOAD_DURATION)

# SCALE 1.0 is the engine benchmarks' cluster: 2,000 namespaces, 10,000
# services, 50,000 pods, 5,000 DestinationRules, 2,000 PeerAuthentications.
SCALE     ?= 1.0
BENCH_OUT ?= $(CURDIR)/bench-e2e.md
# BENCH_PROFILE, when set, is where bench-e2e writes a CPU profile of mtlsguard.
BENCH_PROFILE ?=
# BENCH_ARGS are more flags of the harness, e.g. -blocks 12 or
# -background-rate 0 (see test/benche2e/bench_test.go).
BENCH_ARGS ?=

.PHONY: bench-e2e
bench-e2e: bin build ## Load a cluster of SCALE (1.0: 50,000 pods) into a local control plane; time mtlsguard vs a no-op webhook and tls-check; report in BENCH_OUT.
	cd test/benche2e && $(GO) test -count=1 -timeout 0 -run TestBenchE2E -v . -args -scale $(SCALE) -out $(BENCH_OUT) $(if $(BENCH_PROFILE),-cpu-profile $(BENCH_PROFILE)) $(BENCH_ARGS)

.PHONY: conformance
conformance: build $(ORACLE) ## Compare the engine with Istio's control plane on 3,000 generated meshes of three families.
	$(GO) test ./test/agreement/ -run TestAgreement -count=1 -seeds 2000 -ambient-seeds 500 -entry-seeds 500 -oracle $(ORACLE) -v -timeout 90m

##@ Deployment

.PHONY: manifests
manifests: bin ## Render manifests/default.
	$(BIN)/kubectl kustomize manifests/default

# hack/release is its own module (go-containerregistry stays out of the
# product's go.mod); go run caches its binary.
RELEASE = $(GO) -C hack/release run .

.PHONY: image
image: ## Build the linux/amd64+arm64 OCI image into dist/oci (no Docker engine), SBOMs into dist/sbom.
	$(RELEASE) image -src $(CURDIR) -out $(DIST) -version '$(VERSION)'

.PHONY: dist
dist: ## Build tls-check (6 platforms) and mtlsguard (linux) tar.gz archives and SHA256SUMS into dist/.
	$(RELEASE) dist -src $(CURDIR) -out $(DIST) -version '$(VERSION)'

.PHONY: krew-manifest
krew-manifest: dist ## Generate plugins/tls-check.yaml (krew) from the archives of make dist.
	$(RELEASE) krew -src $(CURDIR) -dist $(DIST) -out $(CURDIR)/plugins/tls-check.yaml -version '$(VERSION)' -url-base '$(KREW_URL_BASE)'

.PHONY: docker-build
docker-build: ## Build the container image IMG (needs a Docker engine; make image does not).
	docker build -t $(IMG) .

.PHONY: deploy
deploy: bin ## Install into the cluster of the current kubeconfig, with image IMG.
	cd manifests/default && $(BIN)/kubectl kustomize . | sed 's|image: mtlsguard:latest|image: $(IMG)|' | $(BIN)/kubectl apply -f -

.PHONY: undeploy
undeploy: bin ## Remove it again.
	$(BIN)/kubectl delete -k manifests/default --ignore-not-found

.PHONY: demo
demo: bin build ## Walk through Istio's Mutual TLS Deep-Dive on a local control plane.
	hack/demo.sh

