# syntax=docker/dockerfile:1
#
# The orders service. Build: docker build -t orders-server .
# Run:   docker run -p 8080:8080 -v orders-data:/data orders-server
#        (SQLite in /data by default; DATABASE_URL or DB_* for MySQL/MariaDB)
# Stop:  docker stop -t 35 <container>   (the server drains for up to 30 s)

# Build with exactly CI's release command. Debian 12 here and in the final
# image: the binary links against the same glibc it runs on.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p server \
    && install -D -m 0755 target/release/server /out/server \
    && install -d -m 0750 /out/data

# Distroless: glibc, libgcc, CA certificates and tzdata; no shell,
# no package manager, no curl (the health check is the binary itself).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/server /usr/local/bin/server
# The working directory holds the default SQLite file (database.db) and an
# optional .env; mount a volume here to keep them.
COPY --from=build --chown=65532:65532 /out/data /data
WORKDIR /data
USER 65532:65532
EXPOSE 8080
# SIGTERM: stop accepting, finish in-flight requests (up to 30 s), exit 0.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/server", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/server"]
