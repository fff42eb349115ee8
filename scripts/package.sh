#!/usr/bin/env bash
# Builds the Debian packages cm-agent, cm-server and cmctl with cargo-deb
# (docs/install.md): each binary with its man page (from --help, by
# help2man), bash, zsh and fish completions, and for the daemons their
# systemd unit and maintainer scripts (packaging/).
#
# Usage: scripts/package.sh [--release] [--out DIR] [--deb-version V] [--lintian]
#        scripts/package.sh --agent-as VERSION [--out DIR]
#
#   (default)       package the dev build the tests use (target/debug; run
#                   `cargo build --workspace --bins` first): what CI installs
#                   on its node and server containers
#   --release       build and package what ships: cm-agent with the size
#                   profile `agent`, cm-server and cmctl with `release`
#   --out DIR       where the .deb files go (default target/debian)
#   --deb-version V the packages' version (default: the workspace's, -1)
#   --lintian       check the packages with lintian; an error fails
#   --target TRIPLE with --release, cross-build for another architecture:
#                   aarch64-unknown-linux-gnu (arm64) links with Debian's
#                   gcc-aarch64-linux-gnu; the man pages and completions
#                   come from a build for this machine (release, else dev)
#   --agent-as V    only cm-agent, built (dev profile) from a copy of this
#                   tree numbered V: the "previous" package the upgrade test
#                   starts from (tests/cluster/packages.sh), so that the
#                   version skew rule between agent and server is exercised
#
# Prints the path of each package built. Installs cargo-deb, help2man and
# (with --lintian) lintian when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly CARGO_DEB_VERSION=3.8.0
RELEASE=0
OUT=target/debian
DEB_VERSION=
LINTIAN=0
AGENT_AS=
TARGET=

log() { printf '[package] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while (($#)); do
    case $1 in
        --release) RELEASE=1 ;;
        --out)
            (($# >= 2)) || die "--out needs a directory"
            OUT=$2
            shift
            ;;
        --deb-version)
            (($# >= 2)) || die "--deb-version needs a version"
            DEB_VERSION=$2
            shift
            ;;
        --lintian) LINTIAN=1 ;;
        --target)
            (($# >= 2)) || die "--target needs a target triple"
            TARGET=$2
            shift
            ;;
        --agent-as)
            (($# >= 2)) || die "--agent-as needs a version"
            AGENT_AS=$2
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

ensure_tools() {
    local missing=()
    command -v help2man >/dev/null || missing+=(help2man)
    ((LINTIAN)) && ! command -v lintian >/dev/null && missing+=(lintian)
    if ((${#missing[@]})); then
        log "installing ${missing[*]} from Debian"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
    fi
    if [[ $(cargo deb --version 2>/dev/null) != *"$CARGO_DEB_VERSION"* ]]; then
        log "installing cargo-deb $CARGO_DEB_VERSION"
        cargo install --quiet --locked --version "$CARGO_DEB_VERSION" cargo-deb
    fi
}

target_dir=${CARGO_TARGET_DIR:-target}

# profile PACKAGE: the Cargo profile the package is built with.
profile() {
    if ((!RELEASE)); then
        echo dev
    elif [[ $1 == cm-agent ]]; then
        echo agent
    else
        echo release
    fi
}

# profile_dir PROFILE [TRIPLE]: where cargo puts that profile's binaries.
profile_dir() {
    local base=$target_dir
    [[ -z ${2:-} ]] || base=$target_dir/$2
    case $1 in
        dev) echo "$base/debug" ;;
        *) echo "$base/$1" ;;
    esac
}

# cross_toolchain: the Rust target and Debian's cross compiler, and the
# variables cargo and the cc crate (aws-lc, SQLite) read.
cross_toolchain() {
    local gnu=${TARGET/-unknown-/-} var=${TARGET//-/_}
    [[ $TARGET == *-linux-gnu ]] || die "--target: only *-linux-gnu targets, not $TARGET"
    rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
    if ! command -v "$gnu-gcc" >/dev/null; then
        log "installing gcc-$gnu from Debian"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q --no-install-recommends "gcc-$gnu" "libc6-dev-${DEB_ARCH}-cross" >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "gcc-$gnu" "libc6-dev-${DEB_ARCH}-cross" >/dev/null; }
    fi
    export "CARGO_TARGET_${var^^}_LINKER=$gnu-gcc" "CC_$var=$gnu-gcc" "AR_$var=$gnu-ar"
}

# docs PACKAGE DIR: the man page, completions and changelog cargo-deb picks
# up from DIR/pkg (the assets in each crate's [package.metadata.deb]).
docs() {
    local pkg=$1 dir=$2 section=8 name
    case $pkg in
        cm-agent) name="keeps a node converged with its cm-server's plan" ;;
        cm-server) name="cm's server: cookbooks, roles, environments, secrets, nodes" ;;
        cmctl)
            name="cm's admin command line"
            section=1
            ;;
    esac
    mkdir -p "$dir/pkg/completions"
    changelog "$pkg" | gzip -9n >"$dir/pkg/$pkg.changelog.gz"
    help2man --no-info --no-discard-stderr --section="$section" --name="$name" \
        --output="$dir/pkg/$pkg.$section" "$dir/$pkg"
    gzip -9nf "$dir/pkg/$pkg.$section"
    "$dir/$pkg" completions bash >"$dir/pkg/completions/$pkg.bash"
    "$dir/$pkg" completions zsh >"$dir/pkg/completions/_$pkg"
    "$dir/$pkg" completions fish >"$dir/pkg/completions/$pkg.fish"
}

# changelog PACKAGE: one entry for the version built; the project's history
# is its git log.
changelog() {
    cat <<EOF
$1 ($(deb_version)) stable; urgency=medium

  * Built from cm $(git describe --always --dirty 2>/dev/null || echo "(no git)").
    Changes: the repository's git log.

 -- cm maintainers <maintainers@cm.example.org>  $(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")
EOF
}

# The workspace's version (the first `version =` of Cargo.toml), -1.
deb_version() {
    if [[ -n $DEB_VERSION ]]; then
        echo "$DEB_VERSION"
    else
        echo "$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)-1"
    fi
}

# agent_as VERSION: cm-agent from a copy of the tracked files with the
# workspace version set to VERSION. The copy builds in this target dir, so
# only cm-model, cm-proto and cm-agent compile again; then this tree's own
# cm-agent binary is linked again over the copy's.
agent_as() {
    local version=$1 src target out
    [[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "--agent-as: a version like 0.3.99, not $version"
    target=$(realpath "$target_dir")
    out=$(realpath "$OUT")
    src=$(mktemp -d "${TMPDIR:-/tmp}/cm-agent-as.XXXXXX")
    # shellcheck disable=SC2064 # expand $src now
    trap "rm -rf '$src'" EXIT
    git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$src"
    sed -i "0,/^version = \".*\"$/s//version = \"$version\"/" "$src/Cargo.toml"
    grep -q "^version = \"$version\"$" "$src/Cargo.toml" || die "cannot set the version in $src/Cargo.toml"
    log "building cm-agent $version from a copy of this tree"
    (cd "$src" && CARGO_TARGET_DIR=$target cargo build -q -p cm-agent)
    mkdir -p "$src/target/debug"
    cp "$target/debug/cm-agent" "$src/target/debug/"
    touch agent/src/bin/cm-agent/main.rs
    cargo build -q -p cm-agent
    [[ $("$target/debug/cm-agent" --version) != *" $version" ]] || die "this tree's cm-agent was not linked again"
    docs cm-agent "$src/target/debug"
    DEB_VERSION=$version-1
    (cd "$src" && CARGO_TARGET_DIR=$src/target cargo deb -p cm-agent --no-build --profile dev \
        --output "$out" --quiet --deb-version "$DEB_VERSION")
}

main() {
    ensure_tools
    mkdir -p "$OUT"
    if [[ -n $AGENT_AS ]]; then
        agent_as "$AGENT_AS"
        return
    fi
    local pkg prof dir host_dir debs=() args target_args=()
    if [[ -n $TARGET ]]; then
        ((RELEASE)) || die "--target goes with --release"
        case $TARGET in
            aarch64-*) DEB_ARCH=arm64 ;;
            *) die "--target: no Debian architecture known for $TARGET" ;;
        esac
        cross_toolchain
        target_args=(--target "$TARGET")
    fi
    if ((RELEASE)); then
        log "building cm-agent (profile agent), cm-server and cmctl (release) ${TARGET:+for $TARGET}"
        cargo build --locked "${target_args[@]}" --profile agent -p cm-agent
        cargo build --locked "${target_args[@]}" --release -p cm-server -p cmctl
    fi
    for pkg in cm-agent cm-server cmctl; do
        prof=$(profile "$pkg")
        dir=$(profile_dir "$prof" "$TARGET")
        [[ -x $dir/$pkg ]] || die "$dir/$pkg is missing: cargo build --workspace --bins first (or --release)"
        if [[ -n $TARGET ]]; then
            # --help is the same in every build of this tree.
            host_dir=$(profile_dir "$prof")
            [[ -x $host_dir/$pkg ]] || host_dir=$(profile_dir dev)
            [[ -x $host_dir/$pkg ]] || die "no $pkg built for this machine: cargo build --workspace --bins first"
            docs "$pkg" "$host_dir"
            rm -rf "$dir/pkg"
            cp -r "$host_dir/pkg" "$dir/pkg"
        else
            docs "$pkg" "$dir"
        fi
        args=(-p "$pkg" --no-build --profile "$prof" --output "$OUT" --quiet
            --deb-version "$(deb_version)" "${target_args[@]}")
        debs+=("$(cargo deb "${args[@]}")")
    done
    if ((LINTIAN)); then
        log "lintian ${debs[*]##*/}"
        # Errors fail; warnings are shown.
        lintian --fail-on error --tag-display-limit 0 "${debs[@]}" >&2
    fi
    printf '%s\n' "${debs[@]}"
}

main
