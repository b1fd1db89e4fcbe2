# timattr as a container image for GitLab CI and other container-based runners.
#
#   docker build -t timattr .                    # the default target `ci`: alpine + timattr
#   docker build --target minimal -t timattr .   # only timattr and CA certificates (FROM scratch)
#
# The binary is built for musl and linked statically, so it runs on either base. CI runners
# (GitLab's `script:`, GitHub's container jobs) need a shell in the job's image, which is why the
# default target is alpine (sh, plus curl and jq for posting merge-request notes); `minimal`
# suits `docker run`. The image runs as an unprivileged user and holds no secret: the SecretKey
# and TIMATTR_STATE come from the job's environment.

ARG RUST_VERSION=1.95.0
ARG ALPINE_VERSION=3.22

FROM rust:${RUST_VERSION}-alpine${ALPINE_VERSION} AS build
# Alpine keeps only the current build of a package per release, so a pinned package version
# stops building within weeks; the base image tag pins the release instead.
# hadolint ignore=DL3018
RUN apk add --no-cache musl-dev
WORKDIR /src
# The context has no .git: the commit `--version` reports comes from this argument.
ARG TIMATTR_BUILD_COMMIT=unknown
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
RUN cargo build --release --locked \
    && cp target/release/timattr /timattr \
    && /timattr --version

FROM scratch AS minimal
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /timattr /usr/local/bin/timattr
USER 65532:65532
WORKDIR /work
ENTRYPOINT ["/usr/local/bin/timattr"]

FROM alpine:${ALPINE_VERSION} AS ci
# hadolint ignore=DL3018
RUN apk add --no-cache curl jq \
    && adduser -D -u 65532 -h /home/timattr timattr
COPY --from=build /timattr /usr/local/bin/timattr
USER 65532:65532
WORKDIR /work
# No ENTRYPOINT: CI runners start a shell in the image and run the job's script.
CMD ["timattr", "--help"]
