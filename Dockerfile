# Images for clusters with Docker and a registry (kind, CI elsewhere): the `kask` worker and the
# `kask-operator` controller, built in one stage and shipped in small runtime stages.
#   docker build --target kask -t localhost/kask:VERSION .
#   docker build --target kask-operator -t localhost/kask-operator:VERSION .
# The offline test bed builds the same images without Docker (tests/cluster/lib/image.sh).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin kask --bin kask-operator \
    && mkdir -p /out && cp target/release/kask target/release/kask-operator /out/

# What both images share: CA certificates for object stores, and a non-root user.
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin kask
USER 65532:65532

FROM runtime AS kask-operator
COPY --from=build /out/kask-operator /usr/local/bin/kask-operator
ENTRYPOINT ["kask-operator"]

# Test pods' tools for the smoke tests (sh, curl); not shipped.
FROM debian:bookworm-slim AS toolbox
RUN apt-get update \
    && apt-get install -y --no-install-recommends busybox-static curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin kask
USER 65532:65532
ENTRYPOINT ["/bin/sh"]

# Last, so a plain `docker build .` gives the worker.
FROM runtime AS kask
COPY --from=build /out/kask /usr/local/bin/kask
ENTRYPOINT ["kask"]
