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
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/portcullis ./cmd/portcullis

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/portcullis /usr/local/bin/portcullis
USER nonroot:nonroot
ENV PORTCULLIS_HTTP_ADDR=:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["serve"]
