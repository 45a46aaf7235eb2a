# syntax=docker/dockerfile:1
# The m2m-operator image: the release binary on distroless (glibc), running as non-root 65532.
#   docker build -t ghcr.io/<you>/m2m-operator:0.1.0 .
# See charts/m2m-operator/README.md for pushing it and pointing the chart at it.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# rust-toolchain.toml pins the exact toolchain; rustup in this image installs it if it differs.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin m2m-operator \
    && cp target/release/m2m-operator /m2m-operator

# glibc and libgcc, no shell, no package manager; the nonroot variant runs as 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /m2m-operator /m2m-operator
USER 65532:65532
# Token endpoint and admin listener (/healthz, /readyz, /metrics).
EXPOSE 8080 8081
ENTRYPOINT ["/m2m-operator"]
CMD ["run"]
