# fundguard's container image: built in a Rust image, run in a slim Debian one as a
# non-root user, its data directory (checkpoints, dead letters, a SQLite alert store) a
# volume. docs/deploy.md says how to run it; deploy/compose/ is a complete example.
#
#   docker build -t fundguard .
#   docker run --stop-timeout 60 -v fundguard-data:/var/lib/fundguard \
#       -v $PWD/fundguard.yaml:/etc/fundguard/fundguard.yaml:ro -p 127.0.0.1:8080:8080 fundguard
#
# The build stage is the toolchain the project is tested with (Rust 1.95);
# the runtime stage needs only what the binary links: OpenSSL 3 and zlib (and CA roots for
# TLS to databases and brokers).

FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The cache mounts keep the registry and build artifacts between builds of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p fundguard \
    && install -m 0755 target/release/fundguard /usr/local/bin/fundguard

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/fundguard --shell /usr/sbin/nologin fundguard \
    && install -d -o fundguard -g fundguard -m 0750 /var/lib/fundguard \
    && install -d -m 0755 /etc/fundguard
COPY --from=build /usr/local/bin/fundguard /usr/local/bin/fundguard
# The example rules, for the demo and to start from; mount your own over /etc/fundguard.
COPY examples/rules /usr/share/fundguard/rules
USER fundguard
VOLUME /var/lib/fundguard
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/fundguard"]
CMD ["run", "--config", "/etc/fundguard/fundguard.yaml"]
