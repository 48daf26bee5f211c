# syntax=docker/dockerfile:1
# Build: a static, pure-Go binary (modernc.org/sqlite needs no cgo).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/easd ./cmd/easd \
 && mkdir -p /out/data

# Run: no shell, no package manager, a non-root user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/easd /usr/local/bin/easd
COPY --from=build --chown=65532:65532 /out/data /var/lib/easd
ENV EASD_DATA_DIR=/var/lib/easd \
    EASD_LISTEN=:8080 \
    EASD_ADMIN_LISTEN=:9090
VOLUME ["/var/lib/easd"]
EXPOSE 8080 9090
USER nonroot:nonroot
HEALTHCHECK --interval=30s --timeout=5s CMD ["/usr/local/bin/easd", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/easd"]
CMD ["serve"]
