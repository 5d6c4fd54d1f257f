# syntax=docker/dockerfile:1
# Multi-stage build of the static binary (same flags as `make build`) into a minimal non-root
# image. The migrations, the OpenAPI document and the common-password list are embedded.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api ./api
COPY cmd ./cmd
COPY db ./db
COPY gen ./gen
COPY internal ./internal
# The build's name (portcullis version, traces): docker build --build-arg VERSION=$(git describe --tags --always --dirty)
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/portcullis ./cmd/portcullis

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/portcullis /usr/local/bin/portcullis
USER nonroot:nonroot
# Every interface, metrics included: a listener on loopback inside the container (the binary's
# default for metrics, safe on a shared host) answers nobody, and Prometheus scrapes port 9090.
# Keep port 9090 off the public network (the API is 8080).
ENV PORTCULLIS_HTTP_ADDR=:8080 PORTCULLIS_METRICS_ADDR=:9090
EXPOSE 8080 9090
# The image has no shell or curl: the binary probes itself (liveness; Kubernetes uses its own
# probes, /healthz and /readyz, and ignores this).
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 CMD ["/usr/local/bin/portcullis", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["serve"]
