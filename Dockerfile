# mtlsguard image: the webhook (entrypoint) and tls-check, static binaries on
# an empty base image, running as an unprivileged user (65532). The webhook
# needs no shell, libc or CA bundle: it trusts the API server through its
# ServiceAccount's CA and serves the certificate mounted by cert-manager.
#
# For people with a Docker engine. `make image` builds the same image without
# one (hack/release), with the same build flags (its TestBuildFlagsAgree
# compares them with this file and the Makefile's GO_BUILD_FLAGS).
#
#   make docker-build IMG=mtlsguard:dev
#   docker build -t mtlsguard:dev .

FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src

# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
      go build -trimpath -buildvcs=false -ldflags="-s -w" -o /out/mtlsguard ./cmd/mtlsguard && \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
      go build -trimpath -buildvcs=false -ldflags="-s -w" -o /out/tls-check ./cmd/tls-check

FROM scratch
COPY --from=builder /out/mtlsguard /out/tls-check /
LABEL org.opencontainers.image.source="https://github.com/mtlsguard/mtlsguard"
USER 65532:65532
WORKDIR /
ENTRYPOINT ["/mtlsguard"]
