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
#
# Base images are pinned by digest (the tag beside it is for the reader; Dependabot updates
# both): a rebuild resolves the same bytes. The digests are the multi-arch index digests listed
# by docker-library/repo-info. The allocator's settings are in the code (src/alloc.rs), so this
# build, which sees only Cargo.* and src/, gets them too.

# The image's Rust already has musl-dev and gcc, which ring and mimalloc compile with.
FROM rust:1.98.0-alpine3.22@sha256:2e452153b2dc6bed8ef123c4801cfd3f637e7c092846f974ecdce5e64af3120c AS build
WORKDIR /src
# The context has no .git: the commit `--version` reports comes from this argument.
ARG TIMATTR_BUILD_COMMIT=unknown
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY schema ./schema
# A world-writable, sticky /tmp for the `minimal` image (FROM scratch has none): readers of a
# sled store open a private copy of it in the temp directory (src/store/snapshot.rs).
RUN cargo build --profile dist --locked --bin timattr \
    && cp target/dist/timattr /timattr \
    && /timattr --version \
    && mkdir -m 1777 /scratch-tmp

FROM scratch AS minimal
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /timattr /usr/local/bin/timattr
COPY --from=build /scratch-tmp /tmp
ENV TMPDIR=/tmp
USER 65532:65532
WORKDIR /work
ENTRYPOINT ["/usr/local/bin/timattr"]

FROM alpine:3.22@sha256:365499d9dccb7c8cfaffef995a6c382e71174585e0556f6476ead1c5971c39fb AS ci
# Alpine keeps only the current build of a package per release, so a pinned package version
# stops building within weeks; the base image digest pins the release instead.
# hadolint ignore=DL3018
RUN apk add --no-cache curl jq \
    && adduser -D -u 65532 -h /home/timattr timattr
COPY --from=build /timattr /usr/local/bin/timattr
USER 65532:65532
WORKDIR /work
# No ENTRYPOINT: CI runners start a shell in the image and run the job's script.
CMD ["timattr", "--help"]
