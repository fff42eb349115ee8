# shellcheck shell=bash
# What the container tests share (scenario.sh, cookbooks.sh): output and
# timings, the exit trap that shows the logs and removes the containers,
# the server container and the admin's cmctl inside it, and booting nodes
# from user-data. Sourced after the caller has set:
#
#   HERE REPO         this folder and the repository
#   TAG               the prefix of messages ("scenario")
#   RUN_ID            label value of every container and network of the run
#   NETWORK           the run's docker network
#   SERVER            the server container's name
#
# and sets what follows; the caller fills PACKAGES_DIR (the .deb files),
# SCRATCH (made once the exit trap is set) and EXTRA_NETWORKS.

: "${HERE:?}" "${REPO:?}" "${TAG:?}" "${RUN_ID:?}" "${NETWORK:?}" "${SERVER:?}"
readonly SERVER_ALIAS=cm-server
readonly SERVER_URL=https://$SERVER_ALIAS:8443
readonly SERVER_TIMEOUT=60
KEEP=${CM_SCENARIO_KEEP:-0}
PACKAGES_DIR=
SCRATCH=
TIMINGS=()
NODES=()
GAPS=()
EXTRA_NETWORKS=() # removed with NETWORK at the end

# --- output -------------------------------------------------------------------

# Messages go to fd 3, the script's stdout, so that they show even from a
# check whose output is captured or discarded.
exec 3>&1
say() { printf '[%s %s] %s\n' "$TAG" "$(date +%T)" "$*" >&3; }
pass() { echo "PASS: $*" >&3; }
# fail WHAT [DETAIL...]: the scenario stops at the first failed check; the
# exit trap prints the logs.
fail() {
    echo "FAIL: $1" >&3
    shift
    (($# == 0)) || printf '%s\n' "$@" | sed 's/^/      /' >&3
    exit 1
}

now() { date +%s.%N; }
# seconds_since START: seconds from START (from now) to now, one decimal.
seconds_since() { awk -v s="$1" -v n="$(now)" 'BEGIN { printf "%.1f", n - s }'; }
# known_gap WHAT: a check that fails for a reason already reported and not
# yet fixed: printed, listed again at the end, not fatal.
known_gap() {
    echo "KNOWN GAP: $*" >&3
    GAPS+=("$*")
}
ms_to_s() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }
# timing LABEL SECONDS: remember a figure for the summary.
# Node names lose the run id here.
timing() { figure "$1" "$2" s; }
# figure LABEL VALUE UNIT: the same, in another unit.
figure() { TIMINGS+=("$(printf '%-54s %6s %s' "${1//"$RUN_ID-"/}" "$2" "$3")"); }

# --- cleanup ----------------------------------------------------------------

# On failure: the server's log and each node's console, agent log and
# cloud-init output, so that a CI log says what went wrong. Colour codes
# are taken out (the binaries colour their logs even into files).
show_logs() {
    {
        echo "---- server $SERVER: docker logs (last 80 lines) ----"
        docker logs "$SERVER" 2>&1 | tail -n 80
        local node
        for node in "${NODES[@]}"; do
            echo "---- node $node: console, docker logs (last 60 lines) ----"
            docker logs "$node" 2>&1 | tail -n 60
            echo "---- node $node: agent log (last 40 lines) ----"
            docker exec "$node" sh -c 'if [ -d /run/systemd/system ]; then
                    journalctl -b -u cm-agent --no-pager | tail -n 40
                else
                    tail -n 40 /var/log/cm-agent.log
                fi' 2>&1
        done
        echo "----"
    } | sed 's/\x1b\[[0-9;]*m//g' >&3 || true
}

# cleanup [STATUS]: the exit trap; STATUS (default $?) is the script's exit
# status, given by a trap that runs something else first.
cleanup() {
    local rc=${1:-$?}
    ((rc == 0)) || show_logs
    if ((KEEP)); then
        say "--keep: leaving the containers (label cm.scenario=$RUN_ID), networks $NETWORK ${EXTRA_NETWORKS[*]} (if made), and $SCRATCH"
        say "server: docker exec $SERVER cmctl node list"
        exit "$rc"
    fi
    local ids
    ids=$(docker ps -aq --filter "label=cm.scenario=$RUN_ID")
    # shellcheck disable=SC2086 # one id per word
    [[ -z $ids ]] || docker rm -f $ids >/dev/null 2>&1 || true
    docker network rm "$NETWORK" "${EXTRA_NETWORKS[@]}" >/dev/null 2>&1 || true
    [[ -z $SCRATCH ]] || rm -rf "$SCRATCH"
    exit "$rc"
}

# --- helpers ------------------------------------------------------------------

# wait_until TIMEOUT CMD...: run CMD every half second until it succeeds;
# fails after TIMEOUT seconds.
wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

running() { [[ $(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null) == true ]]; }

# cmctl ARGS...: the admin's CLI, inside the server container. It finds the
# credential the server wrote at first start (/var/lib/cm/server/admin.credential).
cmctl() { docker exec "$SERVER" cmctl "$@"; }

# runs_json NODE: the node's run reports, newest first.
runs_json() { cmctl --format json runs "$1"; }
has_run() { [[ $(runs_json "$1" | jq length) -gt 0 ]]; }
# newest_plan_is_not NODE HASH: the newest run report is of another plan.
newest_plan_is_not() { runs_json "$1" | jq -e --arg h "$2" '.[0].plan_hash != $h' >/dev/null; }

need_tools() {
    docker info >/dev/null 2>&1 || fail "docker: no engine reachable (this scenario needs root and a Docker engine)"
    if ! command -v jq >/dev/null; then
        # As images.sh does for debootstrap: install what a fresh Debian lacks.
        [[ $(id -u) == 0 ]] || fail "jq is missing (apt-get install jq)"
        say "installing jq from Debian"
        apt-get install -y -q jq >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q jq >/dev/null; }
    fi
}

# --- images --------------------------------------------------------------------

build_images() {
    local start
    start=$(now)
    # Without --packages: the dev build as it is now.
    if [[ -z $PACKAGES_DIR ]]; then
        PACKAGES_DIR=${CARGO_TARGET_DIR:-$REPO/target}/debian
        say "packaging the dev build into $PACKAGES_DIR (scripts/package.sh)"
        rm -f "$PACKAGES_DIR"/*.deb
        "$REPO/scripts/package.sh" --out "$PACKAGES_DIR" >/dev/null ||
            fail "scripts/package.sh (cargo build --workspace --bins first)"
    fi
    say "images: images.sh --with-packages $PACKAGES_DIR"
    "$HERE/images.sh" --with-packages "$PACKAGES_DIR" | sed 's/^/  /'
    timing "images.sh --with-packages" "$(seconds_since "$start")"
}

# --- server ----------------------------------------------------------------------

healthy() {
    docker exec "$SERVER" timeout 5 bash -c '
        exec 3<>/dev/tcp/127.0.0.1/8080 &&
        printf "GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3 &&
        cat <&3' | grep -q '^ok'
}

start_server() {
    local start
    start=$(now)
    say "network $NETWORK, server $SERVER (alias $SERVER_ALIAS)"
    docker network create --label "cm.scenario=$RUN_ID" "$NETWORK" >/dev/null
    docker run -d --name "$SERVER" --hostname "$SERVER" \
        --network "$NETWORK" --network-alias "$SERVER_ALIAS" \
        --label "cm.scenario=$RUN_ID" cm-server:test \
        setpriv --reuid=cm --regid=cm --init-groups \
        cm-server --config /etc/cm/server.yaml --data-dir /var/lib/cm/server \
        --listen 0.0.0.0:8443 --http-listen 0.0.0.0:8080 \
        --tls-name "$SERVER_ALIAS" --tls-name localhost --tls-name 127.0.0.1 >/dev/null
    wait_until "$SERVER_TIMEOUT" healthy ||
        fail "server answers /healthz within ${SERVER_TIMEOUT}s"
    wait_until "$SERVER_TIMEOUT" docker exec "$SERVER" test -s /var/lib/cm/server/admin.credential ||
        fail "server wrote /var/lib/cm/server/admin.credential"
    pass "server is up (/healthz ok, admin credential written)"
    timing "server container start -> /healthz" "$(seconds_since "$start")"
}

# --- the admin's side --------------------------------------------------------

# Everything the repository holds, so the harness grows with it.
push_repository() {
    local dir file
    for dir in cookbooks roles environments; do
        docker cp "$REPO/$dir" "$SERVER:/tmp/$dir"
    done
    for dir in "$REPO"/cookbooks/*/; do
        dir=$(basename "$dir")
        cmctl push cookbook "/tmp/cookbooks/$dir" >/dev/null ||
            fail "cmctl push cookbook /tmp/cookbooks/$dir"
    done
    for file in "$REPO"/environments/*.yaml; do
        cmctl env set "/tmp/environments/$(basename "$file")" >/dev/null ||
            fail "cmctl env set environments/$(basename "$file")"
    done
    for file in "$REPO"/roles/*.yaml; do
        cmctl role set "/tmp/roles/$(basename "$file")" >/dev/null ||
            fail "cmctl role set roles/$(basename "$file")"
    done
    pass "cookbooks pushed, roles and environments set with cmctl"
}

# --- nodes ----------------------------------------------------------------------

# boot_node NAME KIND USERDATA [NETWORK [DOCKER-CREATE-ARGS...]]
boot_node() {
    local name=$1 kind=$2 userdata=$3 network=${4:-$NETWORK}
    shift $(($# < 4 ? $# : 4))
    NODES+=("$name")
    "$HERE/run-node.sh" --kind "$kind" --image "cm-node-$kind:test" --network "$network" \
        "$name" "$userdata" -- --label "cm.scenario=$RUN_ID" "$@" >/dev/null ||
        fail "$name: container started (run-node.sh)"
}

started_at() { date -d "$(docker inspect -f '{{.State.StartedAt}}' "$1")" +%s.%N; }
