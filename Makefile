# mtlsguard — see README.md. `make help` lists the targets.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN        ?= $(CURDIR)/bin
GO         ?= go
IMG        ?= mtlsguard:dev
export KUBEBUILDER_ASSETS := $(BIN)

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: fmt
fmt: ## gofmt every Go file.
	gofmt -w $$(git ls-files '*.go')

# Modules beside the product's: the e2e test, the conformance oracle, the
# demo's control plane. Those with a .maketest file run in make test.
SUBMODULES := $(shell find test hack -name go.mod -not -path '*/testdata/*' -not -path 'hack/tools/*' -printf '%h\n' | sort)

.PHONY: vet
vet: ## go vet every module, and fail on unformatted files.
	$(GO) vet ./...
	@for m in $(SUBMODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: build
build: ## Build mtlsguard and tls-check into bin/.
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/mtlsguard ./cmd/mtlsguard
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/tls-check ./cmd/tls-check
	ln -sf tls-check $(BIN)/kubectl-tls_check

.PHONY: bin
bin: ## Build kube-apiserver, etcd and kubectl from source into bin/ (only when missing).
	hack/build-apiserver.sh $(BIN)

.PHONY: test
test: vet bin build ## Vet, then run every test: unit, golden, integration and e2e against a real API server.
	$(GO) test -race ./policy/... ./webhook/...
	$(GO) test -count=1 ./...
	$(MAKE) -s test-submodules

# -count=1: these tests read bin/, manifests/ and examples/, which go test's
# result cache does not track.
.PHONY: test-submodules
test-submodules:
	@for m in $(SUBMODULES); do \
		if [ -f "$$m/.maketest" ]; then echo "== $$m"; (cd $$m && $(GO) test -count=1 ./...) || exit 1; fi; \
	done

.PHONY: update-golden
update-golden: ## Rewrite policy/testdata golden files.
	$(GO) test ./policy/ -run TestScenarios -update

.PHONY: bench
bench: ## Run the engine benchmarks (see docs/performance.md).
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 20x ./policy/

# SCALE 1.0 is the engine benchmarks' cluster: 2,000 namespaces, 10,000
# services, 50,000 pods, 5,000 DestinationRules, 2,000 PeerAuthentications.
SCALE     ?= 1.0
BENCH_OUT ?= $(CURDIR)/bench-e2e.md

.PHONY: bench-e2e
bench-e2e: bin build ## Load a cluster of SCALE (1.0: 50,000 pods) into a local control plane; time mtlsguard vs a no-op webhook and tls-check; report in BENCH_OUT.
	cd test/benche2e && $(GO) test -count=1 -timeout 0 -run TestBenchE2E -v . -args -scale $(SCALE) -out $(BENCH_OUT)

.PHONY: conformance
conformance: build ## Compare the engine with Istio's control plane on 2,000 generated meshes.
	$(GO) test ./test/agreement/ -run TestAgreement -count=1 -seeds 2000 -v -timeout 60m

##@ Deployment

.PHONY: manifests
manifests: bin ## Render manifests/default.
	$(BIN)/kubectl kustomize manifests/default

.PHONY: docker-build
docker-build: ## Build the container image IMG (needs a Docker engine).
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

