#!/usr/bin/env bash
# Installs one pinned timattr version for this runner's OS and architecture; used by the
# composite action in action.yml, and runnable on its own (tests/it/action_install.rs runs it
# against a local directory laid out like a GitHub release).
#
#   install-timattr.sh resolve   prints (and writes to $GITHUB_OUTPUT) version=, target=, dir=
#   install-timattr.sh install   verifies the archive (cached in dir, or downloaded), unpacks it
#                                into dir/bin, prints path= (also to $GITHUB_OUTPUT; dir/bin goes
#                                to $GITHUB_PATH)
#
# A release vX.Y.Z holds `SHA256SUMS` (sha256sum format) and one archive per target,
# `timattr-X.Y.Z-TARGET.tar.gz` (`.zip` on Windows) containing `timattr-X.Y.Z-TARGET/timattr[.exe]`.
# The archive is used only when its SHA-256 matches SHA256SUMS (and the pinned sha256, if given),
# also when it comes from the cache.
# Its build provenance is then checked with `gh attestation verify` (made by the repository's
# release workflow from the tag vX.Y.Z) where gh is installed; without gh the script says that only
# the SHA-256 was checked.
# A target that the release has no archive for is built with `cargo install --locked` from the
# release's tag instead. Anything else that goes wrong (no SHA256SUMS, a failed download, a
# wrong checksum, a binary that reports another version) fails the install.
#
# Environment (the action sets these from its inputs):
#   TIMATTR_INSTALL_VERSION      X.Y.Z or vX.Y.Z; empty: read from WORKDIR/.timattr-version
#   TIMATTR_INSTALL_WORKDIR      the project directory (default .)
#   TIMATTR_INSTALL_SHA256       optional pinned SHA-256 of this platform's archive
#   TIMATTR_INSTALL_REPOSITORY   owner/name of the repository with the releases; empty: derived
#                                from the action's own checkout path, else $GITHUB_REPOSITORY
#   TIMATTR_INSTALL_BASE         where releases are (default $GITHUB_SERVER_URL/REPO/releases/download);
#                                an https URL or a local directory (a mirror, or a test fixture)
#   TIMATTR_INSTALL_DIR          where to install (default $RUNNER_TOOL_CACHE/timattr/VERSION/OS-ARCH)
#   TIMATTR_INSTALL_CARGO        the cargo used by the fallback (default cargo)
#   TIMATTR_INSTALL_ATTESTATION  auto (verify when gh is installed; the default), required (fail
#                                without gh) or off
#   TIMATTR_INSTALL_GH           the gh used to verify attestations (default gh; it reads GH_TOKEN)
#   RUNNER_OS, RUNNER_ARCH       as on GitHub runners (Linux|macOS|Windows, X64|ARM64|...);
#                                default: from uname
set -euo pipefail

die() {
    echo "::error title=timattr install::$*" >&2
    exit 1
}
note() { echo "timattr install: $*" >&2; }

# Writes name=value to stdout and, on a runner, to the step's outputs.
output() {
    echo "$1=$2"
    if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
        echo "$1=$2" >>"$GITHUB_OUTPUT"
    fi
}

runner_os() {
    if [[ -n "${RUNNER_OS:-}" ]]; then
        echo "$RUNNER_OS"
        return
    fi
    case "$(uname -s)" in
    Linux) echo Linux ;;
    Darwin) echo macOS ;;
    MINGW* | MSYS* | CYGWIN*) echo Windows ;;
    *) uname -s ;;
    esac
}

runner_arch() {
    if [[ -n "${RUNNER_ARCH:-}" ]]; then
        echo "$RUNNER_ARCH"
        return
    fi
    case "$(uname -m)" in
    x86_64 | amd64) echo X64 ;;
    aarch64 | arm64) echo ARM64 ;;
    *) uname -m ;;
    esac
}

# The Rust target of the release archive for this runner; empty when the release has none.
release_target() {
    case "$1/$2" in
    Linux/X64) echo x86_64-unknown-linux-musl ;;
    Linux/ARM64) echo aarch64-unknown-linux-musl ;;
    macOS/X64) echo x86_64-apple-darwin ;;
    macOS/ARM64) echo aarch64-apple-darwin ;;
    Windows/X64) echo x86_64-pc-windows-msvc ;;
    *) echo "" ;;
    esac
}

version() {
    local v="${TIMATTR_INSTALL_VERSION:-}"
    local file="${TIMATTR_INSTALL_WORKDIR:-.}/.timattr-version"
    if [[ -z "$v" && -f "$file" ]]; then
        v="$(tr -d ' \t\r\n' <"$file")"
    fi
    [[ -n "$v" ]] || die "no version: set the action's 'version' input or write it to $file"
    v="${v#v}"
    # Exact versions only: a moving "latest" would defeat pinning and the cache key.
    [[ "$v" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] ||
        die "version '$v' is not an exact version like 0.1.0"
    echo "$v"
}

repository() {
    local repo="${TIMATTR_INSTALL_REPOSITORY:-}"
    # The runner checks an action out to .../_actions/OWNER/REPO/REF; github.action_repository
    # is not set reliably inside composite actions.
    local path="${GITHUB_ACTION_PATH:-}"
    path="${path//\\//}"
    if [[ -z "$repo" && "$path" =~ /_actions/([^/]+)/([^/]+)/[^/]+/?$ ]]; then
        repo="${BASH_REMATCH[1]}/${BASH_REMATCH[2]}"
    fi
    repo="${repo:-${GITHUB_REPOSITORY:-}}"
    [[ "$repo" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] ||
        die "cannot tell which repository holds the releases: set the action's 'repository' input"
    echo "$repo"
}

# The GitHub the runner belongs to (GitHub Enterprise Server has its own).
server() {
    local url="${GITHUB_SERVER_URL:-https://github.com}"
    [[ "$url" == https://* ]] || die "GITHUB_SERVER_URL '$url' is not an https URL"
    echo "${url%/}"
}

# A path the native tools of the runner understand (Windows paths under Git Bash).
native() {
    if command -v cygpath >/dev/null 2>&1; then cygpath -w "$1"; else echo "$1"; fi
}

install_dir() {
    local os arch
    os="$(runner_os | tr '[:upper:]' '[:lower:]')"
    arch="$(runner_arch | tr '[:upper:]' '[:lower:]')"
    if [[ -n "${TIMATTR_INSTALL_DIR:-}" ]]; then
        if command -v cygpath >/dev/null 2>&1; then cygpath -u "$TIMATTR_INSTALL_DIR"; else echo "$TIMATTR_INSTALL_DIR"; fi
    else
        local base="${RUNNER_TOOL_CACHE:-${HOME}/.cache}"
        if command -v cygpath >/dev/null 2>&1; then base="$(cygpath -u "$base")"; fi
        echo "$base/timattr/$1/$os-$arch"
    fi
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        shasum -a 256 "$1" | cut -d' ' -f1
    fi
}

# Copies release file $2 of version $1 to $3: curl for https, cp for a local directory.
fetch() {
    local base="${TIMATTR_INSTALL_BASE:-}"
    if [[ -z "$base" ]]; then
        base="$(server)/$(repository)/releases/download"
    fi
    case "$base" in
    https://*)
        curl --fail --silent --show-error --location --proto '=https' --tlsv1.2 \
            --retry 3 --connect-timeout 20 --max-time 300 \
            --output "$3" "$base/v$1/$2"
        ;;
    http://* | file://*) die "TIMATTR_INSTALL_BASE must be an https URL or a local directory" ;;
    *) cp "$base/v$1/$2" "$3" ;;
    esac
}

# The SHA-256 that SHA256SUMS lists for file $2; empty when the file is not listed.
listed_sum() {
    awk -v name="$2" '{ f = $2; sub(/^\*/, "", f); if (f == name) { print tolower($1); exit } }' "$1"
}

# Checks that the binary $1 runs and is version $2.
check_binary() {
    local said
    said="$("$1" --version 2>/dev/null || true)"
    [[ "$said" == "timattr $2" ]] ||
        die "$1 reports '${said:-nothing}', expected 'timattr $2'"
}

# Unpacks the verified archive $1 of target $2 into $3/bin, replacing what is there.
unpack() {
    local archive="$1" name="timattr-$2" dir="$3" ext="$4" exe="$5" tmp
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064 # expand now: tmp is local
    trap "rm -rf '$tmp'" EXIT
    if [[ "$ext" == zip ]]; then
        if command -v unzip >/dev/null 2>&1; then
            unzip -q "$archive" -d "$tmp"
        else
            7z x -y -o"$tmp" "$archive" >/dev/null
        fi
    else
        tar -xzf "$archive" -C "$tmp"
    fi
    local unpacked="$tmp/$name/$exe"
    [[ -f "$unpacked" && ! -L "$unpacked" ]] || die "${archive##*/} holds no $name/$exe"
    mkdir -p "$dir/bin"
    cp "$unpacked" "$dir/bin/$exe.new"
    chmod 755 "$dir/bin/$exe.new"
    mv -f "$dir/bin/$exe.new" "$dir/bin/$exe"
}

# Makes $dir/$asset the archive whose SHA-256 is $expected: the cached copy when it matches,
# else a fresh download, which must match.
verified_archive() {
    local version="$1" asset="$2" dir="$3" expected="$4"
    if [[ -f "$dir/$asset" && "$(sha256_of "$dir/$asset")" == "$expected" ]]; then
        note "using the cached $asset (SHA-256 verified)"
        return
    fi
    rm -f "$dir/$asset"
    note "downloading $asset"
    fetch "$version" "$asset" "$dir/$asset.part" || die "cannot download $asset of v$version"
    local got
    got="$(sha256_of "$dir/$asset.part")"
    if [[ "$got" != "$expected" ]]; then
        rm -f "$dir/$asset.part"
        die "checksum mismatch for $asset: expected $expected, the download is $got; nothing installed"
    fi
    mv -f "$dir/$asset.part" "$dir/$asset"
}

# Checks that archive $1 of version $2 was built by the repository's release workflow from tag
# v$2 (`gh attestation verify`). Without gh it says so (or fails, when it is required); a failed
# check removes the archive and installs nothing.
verify_attestation() {
    local archive="$1" version="$2" mode="${TIMATTR_INSTALL_ATTESTATION:-auto}"
    local gh="${TIMATTR_INSTALL_GH:-gh}" name="${1##*/}" repo
    case "$mode" in
    off)
        note "attestation check off: $name is verified by its SHA-256 only"
        return
        ;;
    auto | required) ;;
    *) die "attestation must be auto, required or off, not '$mode'" ;;
    esac
    if ! command -v "$gh" >/dev/null 2>&1; then
        [[ "$mode" == auto ]] ||
            die "gh is not installed, and the attestation check is required; nothing installed"
        note "gh is not installed: the build provenance of $name is not verified, only its SHA-256"
        return
    fi
    repo="$(repository)"
    if "$gh" attestation verify "$(native "$archive")" --repo "$repo" \
        --source-ref "refs/tags/v$version" >&2; then
        note "the build provenance of $name is verified: $repo, tag v$version"
    else
        rm -f "$archive"
        die "the build provenance of $name does not verify ($repo, tag v$version); nothing installed"
    fi
}

# No archive fits this runner: build that exact version from the release's tag. A build from an
# earlier run (restored from the cache) is reused when it reports the version.
install_from_source() {
    local version="$1" dir="$2" exe="$3" cargo="${TIMATTR_INSTALL_CARGO:-cargo}"
    if [[ -f "$dir/built-from-source" && -x "$dir/bin/$exe" ]] &&
        "$dir/bin/$exe" --version 2>/dev/null | grep -qx "timattr $version"; then
        note "using the cached build of timattr $version"
        return
    fi
    command -v "$cargo" >/dev/null 2>&1 ||
        die "no release archive for $(runner_os)/$(runner_arch) and no cargo to build v$version"
    local url
    url="$(server)/$(repository)"
    note "no release archive for $(runner_os)/$(runner_arch): building v$version with cargo install --locked"
    "$cargo" install --locked --root "$dir" --git "$url" --tag "v$version" timattr
    touch "$dir/built-from-source"
}

cmd_resolve() {
    local version
    version="$(version)"
    output version "$version"
    output target "$(release_target "$(runner_os)" "$(runner_arch)")"
    output dir "$(native "$(install_dir "$version")")"
}

# The archive is what gets verified, on every run: the cache (shared by every workflow run on
# the branch) keeps the archive, and the binary is unpacked again from it only after its SHA-256
# matched the pinned sha256 or, without one, the release's SHA256SUMS fetched now.
cmd_install() {
    local version dir target pinned exe=timattr ext=tar.gz asset=""
    version="$(version)"
    dir="$(install_dir "$version")"
    target="$(release_target "$(runner_os)" "$(runner_arch)")"
    pinned="$(echo "${TIMATTR_INSTALL_SHA256:-}" | tr '[:upper:]' '[:lower:]')"
    [[ -z "$pinned" || "$pinned" =~ ^[0-9a-f]{64}$ ]] || die "sha256 '$pinned' is not 64 hex digits"
    if [[ "$(runner_os)" == Windows ]]; then
        exe=timattr.exe
        ext=zip
    fi
    [[ -n "$target" ]] && asset="timattr-$version-$target.$ext"
    mkdir -p "$dir"
    local expected="$pinned"
    # With a pinned sha256 a cached archive needs nothing from the network.
    if [[ -z "$pinned" || -z "$asset" || ! -f "$dir/$asset" ||
        "$(sha256_of "$dir/$asset")" != "$pinned" ]]; then
        local sums listed=""
        sums="$(mktemp)"
        fetch "$version" SHA256SUMS "$sums" || die "cannot fetch SHA256SUMS of release v$version"
        [[ -n "$asset" ]] && listed="$(listed_sum "$sums" "$asset")"
        rm -f "$sums"
        if [[ -n "$pinned" && -n "$listed" && "$pinned" != "$listed" ]]; then
            die "the pinned sha256 $pinned is not the one release v$version lists ($listed)"
        fi
        expected="$listed"
    fi
    if [[ -n "$expected" ]]; then
        verified_archive "$version" "$asset" "$dir" "$expected"
        verify_attestation "$dir/$asset" "$version"
        unpack "$dir/$asset" "$version-$target" "$dir" "$ext" "$exe"
    else
        [[ -z "$pinned" ]] || die "a sha256 is pinned but release v$version has no archive for this runner"
        note "no release archive for this runner: no attestation to verify"
        install_from_source "$version" "$dir" "$exe"
    fi
    check_binary "$dir/bin/$exe" "$version"
    if [[ -n "${GITHUB_PATH:-}" ]]; then
        native "$dir/bin" >>"$GITHUB_PATH"
    fi
    output path "$(native "$dir/bin/$exe")"
}

case "${1:-}" in
resolve) cmd_resolve ;;
install) cmd_install ;;
*) die "usage: install-timattr.sh resolve|install" ;;
esac
