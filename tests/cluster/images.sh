#!/usr/bin/env bash
# Builds the container images of cm's cluster tests (see README.md):
#
#   cm-base:bookworm          debootstrap'd Debian 12 + cloud-init + tini,
#                             imported with `docker import` (nothing pulled)
#   cm-node-sysv:bookworm     FROM cm-base: tini + node/entrypoint.sh, no init
#   cm-node-systemd:bookworm  FROM cm-base: systemd as PID 1
#   cm-server:bookworm        FROM cm-base: tini as PID 1, runs cm-server
#   cm-aptcache:bookworm      FROM cm-base: apt-cacher-ng, the nodes' shared
#                             package cache in cookbooks.sh
#
# and, with --with-packages DIR, cm's Debian packages from DIR installed on
# top (scripts/package.sh makes them): cm-agent on the nodes, all three on
# the server:
#   cm-node-sysv:test, cm-node-systemd:test, cm-server:test
#
# An image is built only when it is missing or its inputs changed (each
# image carries a cm.inputs label: a hash of the files it is built from and,
# for the images built FROM cm-base, of its image ID). --rebuild forces all.
#
# Usage: images.sh [--rebuild] [--with-packages DIR]
# Environment: CM_MIRROR, CM_SECURITY_MIRROR (Debian mirrors),
#              CM_IMAGE_WORKDIR (scratch space, default /var/tmp/cm-images).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE
readonly SUITE=bookworm
readonly MIRROR=${CM_MIRROR:-http://deb.debian.org/debian}
readonly SECURITY_MIRROR=${CM_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
readonly WORKDIR=${CM_IMAGE_WORKDIR:-/var/tmp/cm-images}
readonly LOGDIR=$WORKDIR/logs

readonly BASE_IMAGE=cm-base:$SUITE
readonly SYSV_IMAGE=cm-node-sysv:$SUITE
readonly SYSTEMD_IMAGE=cm-node-systemd:$SUITE
readonly SERVER_IMAGE=cm-server:$SUITE
readonly APTCACHE_IMAGE=cm-aptcache:$SUITE
readonly SYSV_TEST_IMAGE=cm-node-sysv:test
readonly SYSTEMD_TEST_IMAGE=cm-node-systemd:test
readonly SERVER_TEST_IMAGE=cm-server:test

# What goes into the base image besides debootstrap's minbase. Part of the
# base image's input hash: change it and the base is rebuilt. Bump the "v"
# in BASE_RECIPE when the build steps below change.
readonly DEBOOTSTRAP_INCLUDE=ca-certificates,iproute2,procps,cron
readonly BASE_PACKAGES="cloud-init tini"
readonly BASE_RECIPE="v2 $SUITE $MIRROR $SECURITY_MIRROR $DEBOOTSTRAP_INCLUDE $BASE_PACKAGES"

# Docker 20.10 without the buildx plugin: use the classic builder, which
# needs nothing pulled and handles these simple Dockerfiles.
export DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0}

REBUILD=0
PACKAGES_DIR=
TIMINGS=()
OLD_IMAGES=() # replaced by a rebuild: removed at the end if nothing uses them
ROOT_MOUNTS=()

log() { printf '[images %s] %s\n' "$(date +%T)" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

# run_logged NAME CMD...: run CMD with its output in $LOGDIR/NAME.log, and
# show the end of that log if it fails.
run_logged() {
    local name=$1
    shift
    mkdir -p "$LOGDIR"
    if ! "$@" >"$LOGDIR/$name.log" 2>&1; then
        tail -n 40 "$LOGDIR/$name.log" >&2
        die "$name failed (full log: $LOGDIR/$name.log)"
    fi
}

# timed LABEL CMD...: run CMD and remember how long it took.
timed() {
    local label=$1 start end
    shift
    start=$(date +%s.%N)
    "$@"
    end=$(date +%s.%N)
    TIMINGS+=("$(awk -v l="$label" -v s="$start" -v e="$end" 'BEGIN { printf "%-34s %6.1f s", l, e - s }')")
}

parse_args() {
    while (($#)); do
        case $1 in
            --rebuild) REBUILD=1 ;;
            --with-packages)
                (($# >= 2)) || die "--with-packages needs a directory"
                PACKAGES_DIR=$2
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
}

ensure_tools() {
    ((EUID == 0)) || die "run as root (debootstrap and chroot need it)"
    command -v docker >/dev/null || die "docker is not installed"
    docker info >/dev/null 2>&1 || die "the docker engine is not reachable"
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if ((${#missing[@]})); then
        log "installing ${missing[*]} from Debian"
        # A fresh machine may have no package lists yet.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
    fi
}

# --- image bookkeeping ------------------------------------------------------

image_label() { docker image inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }
image_id() { docker image inspect -f '{{.Id}}' "$1"; }

# hash_inputs STRING FILE...: short hash of a string and the files' contents.
hash_inputs() {
    local text=$1
    shift
    { printf '%s\n' "$text"; cat "$@"; } | sha256sum | cut -c1-16
}

# needs_build IMAGE HASH: true when IMAGE must be (re)built; remembers the
# image it replaces.
needs_build() {
    if ((!REBUILD)) && [[ $(image_label "$1" cm.inputs) == "$2" ]]; then
        return 1
    fi
    if docker image inspect "$1" >/dev/null 2>&1; then
        OLD_IMAGES=("$(image_id "$1")" "${OLD_IMAGES[@]}")
    fi
    return 0
}

# Drop the images that rebuilds replaced (:test ones, then newest first, so
# node images go before the base they were built on), unless a container
# still uses them or a rebuild gave the very same image back.
remove_old_images() {
    local id image current=()
    for image in "$BASE_IMAGE" "$SYSV_IMAGE" "$SYSTEMD_IMAGE" "$SERVER_IMAGE" "$APTCACHE_IMAGE" \
        "$SYSV_TEST_IMAGE" "$SYSTEMD_TEST_IMAGE" "$SERVER_TEST_IMAGE"; do
        current+=("$(image_id "$image" 2>/dev/null)") || true
    done
    for id in "${OLD_IMAGES[@]}"; do
        [[ " ${current[*]} " == *" $id "* ]] && continue
        docker rmi "$id" >/dev/null 2>&1 || true
    done
}

# --- cm-base ----------------------------------------------------------------

base_hash() {
    hash_inputs "$BASE_RECIPE" "$HERE/base/90-cm-container.cfg" "$HERE/base/99cm-apt.conf"
}

unmount_root() {
    local m
    for m in "${ROOT_MOUNTS[@]}"; do
        mountpoint -q "$m" && umount -l "$m"
    done
    ROOT_MOUNTS=()
}

chroot_run() { chroot "$WORKDIR/root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"; }

debootstrap_root() {
    local root=$WORKDIR/root
    unmount_root
    rm -rf "$root"
    mkdir -p "$root"
    run_logged debootstrap debootstrap --variant=minbase --include="$DEBOOTSTRAP_INCLUDE" \
        "$SUITE" "$root" "$MIRROR"
}

# Files every container of the image should start from. Docker bind-mounts
# its own /etc/hosts, /etc/hostname and /etc/resolv.conf over these at run
# time; they matter for `docker run --network none` and for tools that read
# the image directly, and must not carry the build host's entries (which
# debootstrap copies in).
write_root_files() {
    local root=$WORKDIR/root
    cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
EOF
    echo localhost >"$root/etc/hostname"
    # apt sources as on a Debian 12 cloud image: release, updates, security.
    rm -f "$root/etc/apt/sources.list"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    install -m 0644 "$HERE/base/99cm-apt.conf" "$root/etc/apt/apt.conf.d/99cm-apt"
    # Only for the build: no daemon may start inside the chroot on the host.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 0755 "$root/usr/sbin/policy-rc.d"
    # The chroot resolves the mirror through the host's resolver.
    cp /etc/resolv.conf "$root/etc/resolv.conf"
}

install_base_packages() {
    local root=$WORKDIR/root
    mount -t proc proc "$root/proc"
    ROOT_MOUNTS+=("$root/proc")
    run_logged apt-update chroot_run apt-get update -q
    run_logged apt-upgrade chroot_run apt-get -y -q upgrade
    # shellcheck disable=SC2086 # word-split the package list
    run_logged apt-install chroot_run apt-get install -y -q --no-install-recommends $BASE_PACKAGES
    install -m 0644 "$HERE/base/90-cm-container.cfg" "$root/etc/cloud/cloud.cfg.d/90-cm-container.cfg"
}

# Leave no build state behind: without `cloud-init clean` every node would
# inherit the build's instance and skip its own user-data.
clean_root() {
    local root=$WORKDIR/root
    chroot_run cloud-init clean --logs
    # Where a NoCloud seed goes; it must exist for `docker cp SEED CTR:...`.
    mkdir -p "$root/var/lib/cloud/seed"
    chroot_run apt-get clean
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
    rm -f "$root/usr/sbin/policy-rc.d"
    : >"$root/etc/resolv.conf"
    rm -f "$root"/var/log/apt/* "$root"/var/log/dpkg.log "$root"/var/log/alternatives.log \
        "$root"/var/log/bootstrap.log
    rm -rf "$root"/tmp/* "$root"/var/tmp/* "$root"/run/*
    mkdir -p "$root/run/lock"
    chmod 1777 "$root/run/lock"
    unmount_root
}

tar_into_docker() {
    tar -C "$WORKDIR/root" --numeric-owner -c . |
        docker import \
            -c "LABEL cm.inputs=$1" \
            -c 'ENV LANG=C.UTF-8' \
            -c 'CMD ["/bin/bash"]' \
            - "$BASE_IMAGE"
}

import_root() {
    local hash=$1
    run_logged import tar_into_docker "$hash"
    rm -rf "$WORKDIR/root"
}

# Boot cloud-init's four stages once in a throw-away container (no network)
# with a shell-script user-data: every stage must exit 0 and the script must
# have run. This catches a module that fails in a container.
selftest_base() {
    local seed=$WORKDIR/selftest-seed
    rm -rf "$seed"
    mkdir -p "$seed"
    printf 'instance-id: selftest\nlocal-hostname: selftest\n' >"$seed/meta-data"
    printf '#!/bin/bash\necho ok >/root/selftest-ran\n' >"$seed/user-data"
    # shellcheck disable=SC2016 # the script is expanded inside the container
    run_logged selftest docker run --rm --network none --hostname selftest \
        -v "$seed:/var/lib/cloud/seed/nocloud:ro" "$BASE_IMAGE" bash -euc '
            for stage in "init --local" "init" "modules --mode=config" "modules --mode=final"; do
                cloud-init $stage || { echo "cloud-init $stage exited $?"; exit 1; }
            done
            test -f /root/selftest-ran
            if grep -E "WARNING|ERROR" /var/log/cloud-init.log; then exit 1; fi
            python3 -c "import json,sys; e=json.load(open(\"/run/cloud-init/result.json\"))[\"v1\"][\"errors\"]; print(\"errors:\", e); sys.exit(1 if e else 0)"'
}

build_base() {
    local hash
    hash=$(base_hash)
    if ! needs_build "$BASE_IMAGE" "$hash"; then
        log "$BASE_IMAGE is up to date"
        return
    fi
    log "building $BASE_IMAGE (debootstrap from $MIRROR)"
    trap unmount_root EXIT
    timed "base: debootstrap" debootstrap_root
    write_root_files
    timed "base: apt upgrade + cloud-init" install_base_packages
    clean_root
    timed "base: tar | docker import" import_root "$hash"
    timed "base: cloud-init self-test" selftest_base
}

# --- images FROM cm-base ----------------------------------------------------

# build_on_base IMAGE DIR DOCKERFILE [FILE...]: build IMAGE FROM cm-base with
# DIR (under tests/cluster) as the context; the FILEs (in DIR) are what the
# Dockerfile copies in.
build_on_base() {
    local image=$1 dir=$HERE/$2 dockerfile=$3 hash name
    shift 3
    hash=$(hash_inputs "$(image_id "$BASE_IMAGE")" "$dir/$dockerfile" "${@/#/$dir/}")
    if ! needs_build "$image" "$hash"; then
        log "$image is up to date"
        return
    fi
    name=${image%%:*}
    log "building $image"
    timed "$name" run_logged "$name" docker build --label "cm.inputs=$hash" \
        --build-arg "BASE=$BASE_IMAGE" -f "$dir/$dockerfile" -t "$image" "$dir"
}

# --- the cm packages layer --------------------------------------------------

# deb_in DIR NAME: the one NAME_*.deb in DIR.
deb_in() {
    local debs=("$1"/"$2"_*.deb)
    [[ -f ${debs[0]} ]] || die "--with-packages: no $2_*.deb in $1 (scripts/package.sh makes them)"
    ((${#debs[@]} == 1)) || die "--with-packages: ${#debs[@]} $2 packages in $1: keep one"
    echo "${debs[0]}"
}

# Nodes get cm-agent, and the server image all three (scripts/try-role.sh
# runs its stand-in peers there with `cm-agent pose`), installed with dpkg
# as an image pipeline would (docs/install.md).
build_package_layers() {
    local dir=$1 ctx image
    [[ -d $dir ]] || die "--with-packages: $dir is not a directory"
    ctx=$(mktemp -d "${TMPDIR:-/tmp}/cm-deb-ctx.XXXXXX")
    # shellcheck disable=SC2064 # expand $ctx now
    trap "rm -rf '$ctx'; unmount_root" EXIT
    mkdir -p "$ctx/node/debs" "$ctx/server/debs"
    cp "$(deb_in "$dir" cm-agent)" "$ctx/node/debs/"
    cp "$(deb_in "$dir" cm-agent)" "$ctx/server/debs/"
    cp "$(deb_in "$dir" cm-server)" "$(deb_in "$dir" cmctl)" "$ctx/server/debs/"
    cp "$HERE/layer/Dockerfile" "$ctx/node/"
    cp "$HERE/layer/Dockerfile" "$ctx/server/"
    log "installing $(cd "$ctx" && echo node/debs/* server/debs/*)"
    # The :test images of the previous run would pile up as dangling images.
    for image in "$SYSV_TEST_IMAGE" "$SYSTEMD_TEST_IMAGE" "$SERVER_TEST_IMAGE"; do
        if docker image inspect "$image" >/dev/null 2>&1; then
            OLD_IMAGES=("$(image_id "$image")" "${OLD_IMAGES[@]}")
        fi
    done
    timed "layer: the three :test images" build_layers_in_parallel "$ctx"
}

# In parallel they take about as long as one.
build_layers_in_parallel() {
    local ctx=$1 pids=() pid failed=0
    run_logged sysv-test layer_build "$ctx/node" "$SYSV_IMAGE" "$SYSV_TEST_IMAGE" &
    pids+=($!)
    run_logged systemd-test layer_build "$ctx/node" "$SYSTEMD_IMAGE" "$SYSTEMD_TEST_IMAGE" &
    pids+=($!)
    run_logged server-test layer_build "$ctx/server" "$SERVER_IMAGE" "$SERVER_TEST_IMAGE" &
    pids+=($!)
    for pid in "${pids[@]}"; do
        wait "$pid" || failed=1
    done
    ((!failed)) || die "building the :test images failed"
}

layer_build() {
    docker build --build-arg "BASE=$2" --label "cm.base=$(image_id "$2")" \
        -f "$1/Dockerfile" -t "$3" "$1"
}

# --- report -----------------------------------------------------------------

report() {
    local image size
    log "timings:"
    if ((${#TIMINGS[@]})); then
        printf '  %s\n' "${TIMINGS[@]}"
    else
        echo "  (nothing built)"
    fi
    log "images:"
    for image in "$BASE_IMAGE" "$SYSV_IMAGE" "$SYSTEMD_IMAGE" "$SERVER_IMAGE" "$APTCACHE_IMAGE" \
        "$SYSV_TEST_IMAGE" "$SYSTEMD_TEST_IMAGE" "$SERVER_TEST_IMAGE"; do
        size=$(docker image inspect -f '{{.Size}}' "$image" 2>/dev/null) || continue
        printf '  %-26s %5d MB%s\n' "$image" $((size / 1000000)) "$(staleness "$image")"
    done
}

# A :test image built on an older node/server image (rebuilt since without
# --with-packages) says so.
staleness() {
    local from
    case $1 in
        "$SYSV_TEST_IMAGE") from=$SYSV_IMAGE ;;
        "$SYSTEMD_TEST_IMAGE") from=$SYSTEMD_IMAGE ;;
        "$SERVER_TEST_IMAGE") from=$SERVER_IMAGE ;;
        *) return 0 ;;
    esac
    if [[ $(image_label "$1" cm.base) != "$(image_id "$from")" ]]; then
        echo "  (stale: built on an older $from; run --with-packages)"
    fi
}

main() {
    parse_args "$@"
    ensure_tools
    # One build at a time on a machine (parallel CI jobs share the engine).
    mkdir -p "$WORKDIR"
    exec 9>"$WORKDIR/lock"
    flock 9
    local start=$SECONDS
    build_base
    build_on_base "$SYSV_IMAGE" node Dockerfile.sysv entrypoint.sh policy-rc.d
    build_on_base "$SYSTEMD_IMAGE" node Dockerfile.systemd
    build_on_base "$SERVER_IMAGE" server Dockerfile
    build_on_base "$APTCACHE_IMAGE" aptcache Dockerfile
    if [[ -n $PACKAGES_DIR ]]; then
        build_package_layers "$PACKAGES_DIR"
    fi
    remove_old_images
    report
    log "done in $((SECONDS - start)) s"
}

main "$@"
