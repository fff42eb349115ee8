#!/usr/bin/env bash
# Boots one node container with a user-data file, the way the tests do.
#
# Usage: run-node.sh [options] NAME USER-DATA-FILE [-- DOCKER-CREATE-ARGS...]
#   --kind sysv|systemd   node image to use (default: sysv)
#   --image IMAGE         image (default: cm-node-KIND:bookworm; use
#                         cm-node-KIND:test for the one with cm's binaries)
#   --network NET         docker network to attach (default: docker's bridge)
#   --instance-id ID      NoCloud instance-id (default: NAME)
#   --wait                return once the first boot has finished (cloud-init's
#                         final stage done, so the user-data has run)
#   --apt-proxy URL       apt fetches through this proxy (a package cache
#                         shared by the nodes: http://aptcache:3142)
# NAME is the container's name and hostname (meta-data local-hostname). The
# NoCloud seed (meta-data + the user-data file) is copied into the container
# before it starts, at /var/lib/cloud/seed/nocloud: no host directory has to
# outlive this script, and the seed stays with the container across restarts.
# Prints the container name.
set -euo pipefail

KIND=sysv
IMAGE=
NETWORK=
INSTANCE_ID=
WAIT=0
APT_PROXY=
BOOT_TIMEOUT=${CM_BOOT_TIMEOUT:-120}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() {
    echo "run-node.sh: $*" >&2
    exit 1
}

# The flags each node kind needs.
# Both: CAP_SYS_PTRACE, which root has on a real machine: without it root
# cannot read /proc/PID/exe of another user's process, so
# `start-stop-daemon --stop --exec` (init scripts) finds no daemon that
# dropped privileges (memcached, postgres...) and stops nothing.
# systemd: decisions.md, "systemd as PID 1 in a container" (cgroup v1 engine:
# --privileged fails, this works), plus -t so /dev/console exists and `docker
# logs` shows the console; systemd itself sends its stdout to /dev/null.
kind_args() {
    case $KIND in
        sysv) echo --cap-add SYS_PTRACE ;;
        systemd)
            echo --cap-add SYS_PTRACE -t --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
                --tmpfs /run --tmpfs /run/lock -e container=docker
            ;;
        *) die "unknown --kind $KIND (sysv or systemd)" ;;
    esac
}

# The Nth boot has finished when cloud-init's final stage has printed its
# "finished at" line on the console N times (it does at every boot).
wait_first_boot() {
    local name=$1 deadline=$((SECONDS + BOOT_TIMEOUT))
    until docker logs "$name" 2>&1 | grep -q 'Cloud-init v\. .* finished at'; do
        [[ $(docker inspect -f '{{.State.Running}}' "$name") == true ]] ||
            die "$name stopped while booting (see: docker logs $name)"
        ((SECONDS < deadline)) || die "$name did not finish booting in ${BOOT_TIMEOUT}s"
        sleep 0.2
    done
}

main() {
    while (($#)); do
        case $1 in
            --kind) KIND=$2; shift ;;
            --image) IMAGE=$2; shift ;;
            --network) NETWORK=$2; shift ;;
            --instance-id) INSTANCE_ID=$2; shift ;;
            --wait) WAIT=1 ;;
            --apt-proxy) APT_PROXY=$2; shift ;;
            -h | --help) usage; exit 0 ;;
            -*) die "unknown option $1 (see --help)" ;;
            *) break ;;
        esac
        shift
    done
    (($# >= 2)) || { usage >&2; exit 2; }
    local name=$1 userdata=$2 seed extra=() args
    shift 2
    if (($#)); then
        [[ $1 == -- ]] || die "unexpected argument $1"
        shift
        extra=("$@")
    fi
    [[ -r $userdata ]] || die "cannot read $userdata"
    IMAGE=${IMAGE:-cm-node-$KIND:bookworm}
    INSTANCE_ID=${INSTANCE_ID:-$name}
    read -r -a args <<<"$(kind_args)"
    [[ -z $NETWORK ]] || args+=(--network "$NETWORK")

    seed=$(mktemp -d)
    # shellcheck disable=SC2064 # expand $seed now
    trap "rm -rf '$seed'" EXIT
    printf 'instance-id: %s\nlocal-hostname: %s\n' "$INSTANCE_ID" "$name" >"$seed/meta-data"
    cp "$userdata" "$seed/user-data"
    [[ -z $APT_PROXY ]] || printf 'Acquire::http::Proxy "%s";\n' "$APT_PROXY" >"$seed/01cm-proxy"

    docker create --name "$name" --hostname "$name" "${args[@]}" "${extra[@]}" "$IMAGE" >/dev/null
    if [[ -n $APT_PROXY ]]; then
        docker cp "$seed/01cm-proxy" "$name:/etc/apt/apt.conf.d/01cm-proxy"
        rm "$seed/01cm-proxy"
    fi
    docker cp "$seed" "$name:/var/lib/cloud/seed/nocloud"
    docker start "$name" >/dev/null
    if ((WAIT)); then
        wait_first_boot "$name"
    fi
    echo "$name"
}

main "$@"
