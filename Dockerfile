# celeriac: one static binary in a minimal, non-root image.
#   docker build -t celeriac .
#   docker run --rm celeriac worker -b amqp://guest:guest@rabbitmq:5672// --result-backend redis://redis:6379/0
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/celeriac ./cmd/celeriac

# distroless/static: CA certificates and /etc/passwd, no shell, no libc.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/celeriac /usr/local/bin/celeriac
USER nonroot:nonroot
EXPOSE 9808
# The worker answers Celery's remote-control ping; %h is the container's
# host name, as in the worker's default node name celeriac@%h.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
  CMD ["/usr/local/bin/celeriac", "inspect", "ping", "-d", "celeriac@%h", "-t", "3s"]
ENTRYPOINT ["/usr/local/bin/celeriac"]
CMD ["worker", "--http", "0.0.0.0:9808"]
