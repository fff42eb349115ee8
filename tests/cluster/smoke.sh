#!/usr/bin/env bash
# Smoke test of the node images (see README.md). Builds missing images with
# images.sh, then boots four nodes with run-node.sh on a network of their own:
#
#   sysv-script      cm-node-sysv,    user-data is a #!/bin/bash script
#   sysv-config      cm-node-sysv,    user-data is #cloud-config runcmd
#   systemd-script   cm-node-systemd, user-data is a #!/bin/bash script
#   systemd-config   cm-node-systemd, user-data is #cloud-config runcmd
#
# and checks from outside (docker exec / docker logs) that each user-data
# ran exactly once (also after a container restart), that cloud-init
# reported no error, that the boot reached the console (docker logs) and
# /var/log/cloud-init-output.log, that a node installs memcached
# from the Debian mirror, that the node's init tooling starts, stops,
# disables and enables it, that it runs again after a restart (on the
# systemd node: `systemctl is-active memcached`), and that `docker stop` is
# clean. Prints PASS/FAIL lines and the measured boot times; exits non-zero
# on any failure. Everything it starts is removed on exit, unless
# CM_SMOKE_KEEP=1.
#
# Usage: smoke.sh [--images-only-if-present]
#   --images-only-if-present  fail instead of building missing images
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE
readonly SYSV_IMAGE=${CM_SYSV_IMAGE:-cm-node-sysv:bookworm}
readonly SYSTEMD_IMAGE=${CM_SYSTEMD_IMAGE:-cm-node-systemd:bookworm}
readonly RUN_ID=cm-smoke-$$
readonly NETWORK=$RUN_ID
readonly BOOT_TIMEOUT=${CM_SMOKE_BOOT_TIMEOUT:-120} # seconds; a boot takes 2-4 s here
readonly APT_TIMEOUT=600    # seconds for apt-get update + install memcached

FAILURES=0
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/$RUN_ID.XXXXXX")
readonly SCRATCH
FIGURES=()

say() { printf '[smoke %s] %s\n' "$(date +%T)" "$*"; }
pass() { echo "PASS: $*"; }
fail() {
    echo "FAIL: $*"
    FAILURES=$((FAILURES + 1))
}

# check DESCRIPTION CMD...: PASS if CMD succeeds, FAIL (with its output)
# otherwise.
check() {
    local what=$1 out
    shift
    if out=$("$@" 2>&1); then
        pass "$what"
    else
        fail "$what"
        [[ -z $out ]] || tail -n 20 <<<"$out" | sed 's/^/      /'
    fi
}

cleanup() {
    local rc=$?
    if [[ ${CM_SMOKE_KEEP:-0} == 1 ]]; then
        say "CM_SMOKE_KEEP=1: leaving containers (label cm.smoke=$RUN_ID), network $NETWORK and $SCRATCH"
        exit "$rc"
    fi
    local ids
    ids=$(docker ps -aq --filter "label=cm.smoke=$RUN_ID")
    # shellcheck disable=SC2086 # one id per word
    [[ -z $ids ]] || docker rm -f $ids >/dev/null 2>&1 || true
    docker network rm "$NETWORK" >/dev/null 2>&1 || true
    rm -rf "$SCRATCH"
    exit "$rc"
}

# --- nodes ------------------------------------------------------------------

# write_userdata NAME KIND: user-data that appends the time it ran (seconds
# since the epoch) to /root/userdata-ran. KIND: script|config.
write_userdata() {
    local file=$SCRATCH/$1.user-data
    case $2 in
        script)
            cat >"$file" <<'EOF'
#!/bin/bash
date +%s.%N >>/root/userdata-ran
EOF
            ;;
        config)
            cat >"$file" <<'EOF'
#cloud-config
runcmd:
  - [ sh, -c, 'date +%s.%N >>/root/userdata-ran' ]
EOF
            ;;
    esac
    echo "$file"
}

# start_node NAME IMAGE-KIND USERDATA-KIND, through run-node.sh (which holds
# the docker flags each kind needs and copies the NoCloud seed in).
start_node() {
    local image=$SYSV_IMAGE
    [[ $2 == sysv ]] || image=$SYSTEMD_IMAGE
    "$HERE/run-node.sh" --kind "$2" --image "$image" --network "$NETWORK" \
        "$RUN_ID-$1" "$(write_userdata "$1" "$3")" -- --label "cm.smoke=$RUN_ID" >/dev/null
}

node_exec() {
    local name=$1
    shift
    docker exec "$RUN_ID-$name" "$@"
}

# How many boots have finished: cloud-init's final stage prints its
# "finished at" line on the console at every boot, after the user-data.
boots_finished() {
    docker logs "$RUN_ID-$1" 2>&1 | grep -c 'Cloud-init v\. .* finished at' || true
}

# wait_booted NAME N: wait for the Nth boot to finish; give up at once if
# the container stopped.
wait_booted() {
    local deadline=$((SECONDS + BOOT_TIMEOUT))
    until (($(boots_finished "$1") >= $2)); do
        if [[ $(docker inspect -f '{{.State.Running}}' "$RUN_ID-$1") != true ]]; then
            echo "container $RUN_ID-$1 is not running"
            return 1
        fi
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

userdata_runs() { node_exec "$1" sh -c 'cat /root/userdata-ran 2>/dev/null | wc -l'; }

# Seconds from the container's start to the user-data's timestamp.
userdata_delay() {
    local started ran
    started=$(docker inspect -f '{{.State.StartedAt}}' "$RUN_ID-$1")
    ran=$(node_exec "$1" head -n 1 /root/userdata-ran)
    awk -v s="$(date -d "$started" +%s.%N)" -v r="$ran" 'BEGIN { printf "%.1f", r - s }'
}

# --- checks -----------------------------------------------------------------

expect_runs() {
    local n
    n=$(userdata_runs "$1")
    [[ $n == "$2" ]] || { echo "user-data ran $n times, expected $2"; return 1; }
}

cloud_init_ok() {
    # `status` exits 0 only when done without errors; result.json lists any.
    node_exec "$1" cloud-init status --long &&
        node_exec "$1" python3 -c '
import json, sys
errors = json.load(open("/run/cloud-init/result.json"))["v1"]["errors"]
sys.exit("errors: %s" % errors if errors else 0)'
}

output_log_has_run() {
    node_exec "$1" grep -q 'Cloud-init v\. .* finished at' /var/log/cloud-init-output.log
}

# systemd reaches running (or degraded: then name the failed units).
systemd_state() {
    local state
    state=$(node_exec "$1" systemctl is-system-running --wait 2>/dev/null) || true
    case $state in
        running) echo running ;;
        degraded)
            echo "degraded:"
            node_exec "$1" systemctl --failed --no-legend
            ;;
        *)
            echo "state '$state'"
            return 1
            ;;
    esac
}

install_memcached() {
    node_exec "$1" timeout "$APT_TIMEOUT" sh -c 'apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q memcached' >"$SCRATCH/$1-apt.log" 2>&1 ||
        { tail -n 20 "$SCRATCH/$1-apt.log"; return 1; }
}

memcached_running() {
    case $2 in
        sysv) node_exec "$1" pgrep -x memcached ;;
        systemd) node_exec "$1" systemctl is-active memcached ;;
    esac
}

# What the init tooling does with the installed service. sysv: stop really
# stops (needs CAP_SYS_PTRACE, see run-node.sh), a disabled service is not
# started by invoke-rc.d (node/policy-rc.d), enabled again it starts.
sysv_stop_works() {
    node_exec "$1" sh -c 'invoke-rc.d memcached stop && ! pgrep -x memcached'
}
sysv_disabled_stays_down() {
    node_exec "$1" sh -c 'update-rc.d memcached disable && invoke-rc.d memcached start;
        ! pgrep -x memcached'
}
sysv_enabled_starts() {
    node_exec "$1" sh -c 'update-rc.d memcached enable && invoke-rc.d memcached start &&
        pgrep -x memcached'
}
systemd_restart_works() {
    node_exec "$1" sh -c 'systemctl restart memcached && systemctl is-active memcached &&
        systemctl is-enabled memcached'
}

service_checks() {
    local name=$1 kind=$2
    case $kind in
        sysv)
            check "$name: invoke-rc.d memcached stop stops it" sysv_stop_works "$name"
            check "$name: a disabled memcached is not started by invoke-rc.d" \
                sysv_disabled_stays_down "$name"
            check "$name: enabled again, invoke-rc.d starts memcached" sysv_enabled_starts "$name"
            ;;
        systemd)
            check "$name: systemctl restart memcached; active and enabled" \
                systemd_restart_works "$name"
            ;;
    esac
}

clean_stop() {
    docker stop -t 30 "$RUN_ID-$1" >/dev/null
    local code
    code=$(docker inspect -f '{{.State.ExitCode}}' "$RUN_ID-$1")
    [[ $code == 0 ]] || { echo "exit code $code"; return 1; }
}

show_console_on_failure() {
    local before=$1 name=$2
    if ((FAILURES > before)); then
        echo "---- console of $name (last 30 lines) ----"
        docker logs "$RUN_ID-$name" 2>&1 | tail -n 30
        echo "----"
    fi
}

# test_node NAME IMAGE-KIND USERDATA-KIND WITH-PACKAGE(yes|no)
test_node() {
    local name=$1 kind=$2 udkind=$3 with_package=$4 before=$FAILURES start
    say "booting $name"
    start=$SECONDS
    if ! start_node "$name" "$kind" "$udkind"; then
        fail "$name: container started"
        return
    fi
    if ! wait_booted "$name" 1 >/dev/null; then
        fail "$name: first boot finished (on the console) within ${BOOT_TIMEOUT}s"
        show_console_on_failure "$before" "$name"
        return
    fi
    pass "$name: first boot finished (on the console) in $((SECONDS - start)) s"
    if [[ $kind == systemd ]]; then
        check "$name: systemd is running or degraded" systemd_state "$name"
        FIGURES+=("$(printf '%-16s systemd state after boot: %s' "$name" \
            "$(node_exec "$name" systemctl is-system-running 2>/dev/null || true)")")
    fi
    check "$name: user-data ran once" expect_runs "$name" 1
    check "$name: cloud-init done without errors" cloud_init_ok "$name"
    check "$name: /var/log/cloud-init-output.log has the boot" output_log_has_run "$name"
    FIGURES+=("$(printf '%-16s container start -> user-data ran: %s s' "$name" "$(userdata_delay "$name")")")

    if [[ $with_package == yes ]]; then
        start=$SECONDS
        check "$name: apt-get update && apt-get install -y memcached" install_memcached "$name"
        FIGURES+=("$(printf '%-16s apt-get update + install memcached: %d s' "$name" $((SECONDS - start)))")
        check "$name: memcached is running ($kind)" memcached_running "$name" "$kind"
        service_checks "$name" "$kind"
    fi

    say "restarting $name"
    docker restart "$RUN_ID-$name" >/dev/null
    if wait_booted "$name" 2 >/dev/null; then
        pass "$name: second boot finished (on the console)"
    else
        fail "$name: second boot finished (on the console) within ${BOOT_TIMEOUT}s"
    fi
    if [[ $kind == systemd ]]; then
        check "$name: systemd is running or degraded after restart" systemd_state "$name"
    fi
    check "$name: user-data did not run again after restart" expect_runs "$name" 1
    if [[ $with_package == yes ]]; then
        check "$name: memcached is running again after restart" memcached_running "$name" "$kind"
    fi
    check "$name: docker stop is clean (exit code 0)" clean_stop "$name"
    show_console_on_failure "$before" "$name"
}

main() {
    local build=1
    case ${1:-} in
        "") ;;
        --images-only-if-present) build=0 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "unknown argument: $1" >&2
            exit 2
            ;;
    esac
    trap cleanup EXIT
    local start=$SECONDS
    if ((build)); then
        say "checking images (images.sh builds only what is missing)"
        "$HERE/images.sh"
    else
        docker image inspect "$SYSV_IMAGE" "$SYSTEMD_IMAGE" >/dev/null ||
            { echo "FAIL: images missing (run images.sh)"; exit 1; }
    fi
    # The nodes below use a network of their own (as the cluster tests do,
    # for names); this checks the default bridge reaches the mirror too.
    check "default bridge: apt-get update in a node container reaches the mirror" \
        docker run --rm --network bridge --label "cm.smoke=$RUN_ID" "$SYSV_IMAGE" \
        timeout "$APT_TIMEOUT" apt-get update -q
    docker network create --label "cm.smoke=$RUN_ID" "$NETWORK" >/dev/null

    test_node sysv-script sysv script yes
    test_node sysv-config sysv config no
    test_node systemd-script systemd script yes
    test_node systemd-config systemd config no

    if ((${#FIGURES[@]})); then
        say "figures:"
        printf '  %s\n' "${FIGURES[@]}"
    fi
    if ((FAILURES)); then
        echo "FAIL: smoke test: $FAILURES check(s) failed ($((SECONDS - start)) s)"
        exit 1
    fi
    echo "PASS: smoke test ($((SECONDS - start)) s)"
}

main "$@"
