#!/usr/bin/env bash
# The repository's cookbooks on real node containers, checked by the real
# clients of each service (tests/cluster/README.md). A server container
# holds the repository's cookbooks, roles and environments, pushed with
# cmctl; every node boots from `cmctl userdata` for its role, and all of
# them fetch packages through one apt-cacher-ng container.
#
#   web tier   two memcached nodes and two web nodes: a PHP session made on
#              one web node is the same session on the other (curl with one
#              cookie jar, alternating), and survives one memcached node
#              stopped;
#   nagios     a monitoring node: `nagios4 -v` passes on what the cookbook
#              rendered, the web interface refuses a request without the
#              password and, with the secret's password, lists every node;
#   cassandra  three nodes with install: none: each cassandra.yaml names
#              the first two members as seeds and the node's own token
#              (single-token mode), and Java 17 is installed; the first
#              seed retired, a fourth node takes its place, boots
#              replacing it and is not its own seed.
#
#   s3sync     a node with role backup and moto_server (scripts/with-s3.sh)
#              on the network's gateway: the sync job uploads its logs, and
#              three runs of the backup job keep the newest two copies,
#              as `s3cmd ls` shows.
#
# Usage: cookbooks.sh [--keep] [--only web|nagios|cassandra|s3sync]... [--packages DIR]
# Environment: CM_SCENARIO_KEEP=1 (as --keep), CM_CONVERGE_TIMEOUT
# (seconds from a node's start to its first converge, default 600).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
readonly HERE REPO
readonly TAG=cookbooks
readonly RUN_ID=cm-cookbooks-$$
readonly NETWORK=$RUN_ID
readonly SERVER=$RUN_ID-server
# shellcheck source=tests/cluster/lib.sh
. "$HERE/lib.sh"
readonly APTCACHE=$RUN_ID-aptcache
readonly APT_PROXY=http://aptcache:3142
readonly ENVIRONMENT=production
readonly CONVERGE_TIMEOUT=${CM_CONVERGE_TIMEOUT:-600}
readonly FOLLOW_TIMEOUT=180 # a plan change (a peer joining) through the splay

STAGES=()
declare -A ADDRESS # node -> its address, kept after it stops
S3_PID= # scripts/with-s3.sh running moto_server for the s3sync stage
readonly SESSIONS=16 # cookie jars: all 16 miss the stopped member as first copy once in 65,536 runs

parse_args() {
    while (($#)); do
        case $1 in
            --keep) KEEP=1 ;;
            --only)
                [[ ${2:-} =~ ^(web|nagios|cassandra|s3sync)$ ]] || fail "--only takes web, nagios, cassandra or s3sync"
                STAGES+=("$2")
                shift
                ;;
            --packages)
                PACKAGES_DIR=$2
                shift
                ;;
            -h | --help)
                sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
                exit 0
                ;;
            *) fail "unknown argument $1 (see --help)" ;;
        esac
        shift
    done
    ((${#STAGES[@]})) || STAGES=(web nagios cassandra s3sync)
}

# --- the fleet -------------------------------------------------------------------

start_aptcache() {
    docker run -d --name "$APTCACHE" --network "$NETWORK" --network-alias aptcache \
        --label "cm.scenario=$RUN_ID" cm-aptcache:bookworm >/dev/null
    NODES+=("$APTCACHE")
}

# boot ROLE NAME...: boot systemd nodes with the role's user-data, at once.
boot() {
    local role=$1 userdata=$SCRATCH/user-data-$1 name
    shift
    cmctl userdata --role "$role" --env "$ENVIRONMENT" --server "$SERVER_URL" --cloud none >"$userdata" ||
        fail "cmctl userdata --role $role"
    for name in "$@"; do
        NODES+=("$name")
        "$HERE/run-node.sh" --kind systemd --image cm-node-systemd:test --network "$NETWORK" \
            --apt-proxy "$APT_PROXY" "$name" "$userdata" -- --label "cm.scenario=$RUN_ID" >/dev/null ||
            fail "$name: container started (run-node.sh)"
        ADDRESS[$name]=$(ip_of "$name")
    done
}

# succeeded NODE: its newest run report says success.
succeeded() { cmctl --format json runs "$1" | jq -e '.[0].status == "success"' >/dev/null; }

# converged NODE...: each node's first run succeeded (a fresh node converges
# in one go, not after a retry); its time and what the node fetched through
# the cache go to the figures.
converged() {
    local node start first runs
    start=$(now)
    for node in "$@"; do
        wait_until "$CONVERGE_TIMEOUT" succeeded "$node" ||
            fail "$node: a successful run within ${CONVERGE_TIMEOUT}s" "$(cmctl runs "$node" 2>&1 | head -n 5)"
        runs=$(cmctl --format json runs "$node")
        jq -e '.[-1].status == "success"' <<<"$runs" >/dev/null ||
            fail "$node: its first run succeeded" \
                "$(jq -c '.[-1].report.resources[]? | select(.error) | {name, error}' <<<"$runs" | head -c 2000)"
        first=$(jq '.[-1].duration_ms' <<<"$runs")
        timing "$node: first converge (agent's report)" "$(ms_to_s "$first")"
        fetched "$node"
    done
    pass "$*: converged ($(seconds_since "$start") s after the wait began)"
}

# idempotent NODE...: a converge by hand changes nothing once the plan is
# settled, and `cm-agent check` passes (the roles' `checks:`); its time
# goes to the figures. A plan may change on its own meanwhile (a peer
# joining, or one stopped turning unreachable, changes the cluster view):
# a converge that changed something is then allowed only if it converged
# another plan than the run before it, and the next must change nothing.
idempotent() {
    local node second before
    for node in "$@"; do
        second=$(docker exec "$node" cm-agent run --once --format json) ||
            fail "$node: cm-agent run --once" "$second"
        if ! jq -e '.report.status == "success" and .report.resources_changed == 0' <<<"$second" >/dev/null; then
            before=$(runs_json "$node" | jq -r '.[1].plan_hash')
            [[ $(jq -r .plan_hash <<<"$second") != "$before" ]] ||
                fail "$node: a second converge changes nothing" \
                    "$(jq -c '[.report.resources[]? | select(.changed or .error) | {name, error}]' <<<"$second")"
            say "$node: its plan changed since its last run (the cluster view moved): converging again"
            second=$(docker exec "$node" cm-agent run --once --format json) ||
                fail "$node: cm-agent run --once, again" "$second"
            jq -e '.report.status == "success" and .report.resources_changed == 0' <<<"$second" >/dev/null ||
                fail "$node: a converge of its settled plan changes nothing" \
                    "$(jq -c '[.report.resources[]? | select(.changed or .error) | {name, error}]' <<<"$second")"
        fi
        timing "$node: second converge, nothing changed" "$(ms_to_s "$(jq .report.duration_ms <<<"$second")")"
        docker exec "$node" cm-agent check --wait 60 >/dev/null ||
            fail "$node: its roles' checks pass" "$(docker exec "$node" cm-agent check 2>&1)"
    done
    pass "$*: a converge of the settled plan changes nothing, and the roles' checks pass"
}

ip_of() { docker inspect -f "{{(index .NetworkSettings.Networks \"$NETWORK\").IPAddress}}" "$1"; }

# set_role_attributes ROLE JSON: the repository's role with JSON merged
# into its attributes, set with cmctl (python3 and PyYAML come with
# cloud-init in every image).
set_role_attributes() {
    docker exec "$SERVER" python3 -c '
import json, sys, yaml
role = yaml.safe_load(open(f"/tmp/roles/{sys.argv[1]}.yaml"))
role.setdefault("attributes", {}).update(json.loads(sys.argv[2]))
yaml.safe_dump(role, open("/tmp/role.yaml", "w"), sort_keys=False)' "$1" "$2"
    cmctl role set /tmp/role.yaml >/dev/null || fail "cmctl role set $1 with $2"
}

# --- web tier ----------------------------------------------------------------------

# visit NODE JAR: one request to the session page with cookie jar JAR, by
# one name for every web node as behind a load balancer (a cookie is kept
# per host name); prints the visit count after checking the page's other
# lines.
visit() {
    local page jar=$SCRATCH/cookies-$2
    page=$(curl -sS --max-time 30 -b "$jar" -c "$jar" \
        --resolve "www.cm.test:80:${ADDRESS[$1]}" http://www.cm.test/session.php) ||
        fail "$1: GET /session.php" "$page"
    grep -qx "handler=memcached" <<<"$page" || fail "$1: sessions are in memcached" "$page"
    grep -qx "node=$1" <<<"$page" || fail "$1: the page is served by $1" "$page"
    sed -n 's/^visits=//p' <<<"$page"
}

stage_web() {
    local mc=("$RUN_ID-mc1" "$RUN_ID-mc2") web=("$RUN_ID-web1" "$RUN_ID-web2") count expect health jar node current
    say "== web tier: ${mc[*]} (memcached), then ${web[*]} (web)"
    boot memcached "${mc[@]}"
    converged "${mc[@]}"
    idempotent "${mc[@]}"
    boot web "${web[@]}"
    converged "${web[@]}"
    idempotent "${web[@]}"
    health=$(curl -sS --max-time 10 "http://${ADDRESS[${web[0]}]}/health") || fail "${web[0]}: GET /health"
    [[ $health == ok ]] || fail "${web[0]}: /health says ok" "$health"
    pass "${web[0]}: /health answers ok"
    current=$(docker exec "${web[0]}" readlink /var/www/app/current)
    [[ $current =~ ^releases/[0-9a-f]{16}$ ]] || fail "${web[0]}: the application is deployed: current -> releases/ID" "$current"
    pass "${web[0]}: the application is deployed (current -> $current)"

    # Each session is kept on both members; which one comes first (and
    # would hold a lock) is up to its id, so there are several sessions.
    for jar in $(seq "$SESSIONS"); do
        expect=0
        for node in "${web[@]}" "${web[@]}"; do
            count=$(visit "$node" "$jar")
            expect=$((expect + 1))
            [[ $count == "$expect" ]] || fail "$node: visit $expect of session $jar" "visits=$count"
        done
    done
    pass "$SESSIONS sessions across ${web[*]}: each counted 4 visits in turn"

    docker stop "${mc[0]}" >/dev/null
    say "stopped ${mc[0]}"
    for jar in $(seq "$SESSIONS"); do
        expect=4
        for node in "${web[@]}"; do
            count=$(visit "$node" "$jar")
            expect=$((expect + 1))
            [[ $count == "$expect" ]] ||
                fail "$node: session $jar survives ${mc[0]} stopped (visit $expect)" "visits=$count"
        done
    done
    pass "every session survives one memcached node stopped: visits 5 and 6 counted"
}

# --- nagios ------------------------------------------------------------------------

stage_nagios() {
    local mon=$RUN_ID-mon1 password url code
    say "== nagios: $mon watching every node"
    password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    printf '%s' "$password" | docker exec -i "$SERVER" cmctl secret set nagios_admin_password --role monitoring >/dev/null ||
        fail "cmctl secret set nagios_admin_password --role monitoring"
    boot monitoring "$mon"
    converged "$mon"
    idempotent "$mon"
    docker exec "$mon" /usr/sbin/nagios4 -v /etc/nagios4/nagios.cfg >/dev/null ||
        fail "$mon: nagios4 -v passes on the rendered configuration"
    pass "$mon: nagios4 -v passes"

    url="http://${ADDRESS[$mon]}/cgi-bin/nagios4/statusjson.cgi?query=hostlist"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$url")
    [[ $code == 401 ]] || fail "$mon: the web interface refuses a request without the password" "HTTP $code"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --digest -u "nagiosadmin:wrong-$password" "$url")
    [[ $code == 401 ]] || fail "$mon: the web interface refuses a wrong password" "HTTP $code"
    pass "$mon: the web interface refuses no password and a wrong one (401)"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --digest -u "nagiosadmin:$password" "$url")
    [[ $code == 200 ]] || fail "$mon: the web interface accepts the secret's password" "HTTP $code"
    # Nagios loads the configuration a moment after the run's reload.
    wait_until 60 lists_every_node "$url" "$password" ||
        fail "$mon: Nagios lists every active node within 60 s" \
            "$(curl -sS --max-time 10 --digest -u "nagiosadmin:$password" "$url")"
    pass "$mon: with the secret's password, Nagios lists every active node"
}

# lists_every_node URL PASSWORD: the host list names every active node.
lists_every_node() {
    local hosts node
    hosts=$(curl -sS --max-time 10 --digest -u "nagiosadmin:$2" "$1" | jq -r '.data.hostlist | keys[]') || return 1
    for node in $(cmctl --format json node list | jq -r '.[] | select(.state == "active") | .name'); do
        grep -qx "$node" <<<"$hosts" || return 1
    done
}

# --- cassandra ---------------------------------------------------------------------

# cassandra_rendered NODE: its cassandra.yaml names the first two members
# (by ordinal) as seeds and its own token.
cassandra_rendered() {
    local node=$1 view seeds ordinal token yaml
    view=$(cmctl --format json cluster show --role cassandra --env "$ENVIRONMENT")
    seeds=$(jq -r '[sort_by(.ordinal)[] | select(.ordinal < 2) | "\(.address):7000"] | join(",")' <<<"$view")
    ordinal=$(jq -r --arg n "$node" '.[] | select(.node == $n) | .ordinal' <<<"$view")
    token=$(python3 -c "print($ordinal * (2**64 // 6) - 2**63)")
    yaml=$(docker exec "$node" cat /etc/cassandra/cassandra.yaml)
    grep -qx "      - seeds: \"$seeds\"" <<<"$yaml" &&
        grep -qx "initial_token: $token" <<<"$yaml" &&
        grep -qx "listen_address: ${ADDRESS[$node]}" <<<"$yaml"
}

stage_cassandra() {
    local ring=("$RUN_ID-cass1" "$RUN_ID-cass2" "$RUN_ID-cass3") node
    say "== cassandra: ${ring[*]} (install: none, single tokens over 6 places)"
    set_role_attributes cassandra '{"cassandra": {"tokens": "single", "ring_size": 6}}'
    boot cassandra "${ring[@]}"
    converged "${ring[@]}"
    # A node that converged before the others joined follows their joins.
    for node in "${ring[@]}"; do
        wait_until "$FOLLOW_TIMEOUT" cassandra_rendered "$node" ||
            fail "$node: cassandra.yaml has the two first members as seeds and its own token" \
                "$(docker exec "$node" grep -E 'seeds:|initial_token:|listen_address:' /etc/cassandra/cassandra.yaml)" \
                "$(cmctl cluster show --role cassandra)"
    done
    pass "${ring[*]}: seeds are the first two members, each has its own token"
    idempotent "${ring[@]}"
    # Captured first: grep -q ending the pipe early would kill java with
    # SIGPIPE, which pipefail reports as a failure.
    [[ $(docker exec "${ring[0]}" java -version 2>&1) == *'version "17'* ]] ||
        fail "${ring[0]}: Java 17 is installed"
    if docker exec "${ring[0]}" test -e /usr/sbin/cassandra; then
        fail "${ring[0]}: install: none installs no Cassandra"
    fi
    pass "${ring[0]}: Java 17, and no Cassandra binaries (install: none)"
    replace_a_seed
}

# replace_a_seed: the first seed (ordinal 0; ordinals follow enrollment,
# not names) is retired and a new node takes its place: it gets the seed's
# ordinal, boots replacing its address, and lists the next two members (by
# ordinal) as seeds, never itself.
replace_a_seed() {
    local new=$RUN_ID-cass4 gone view yaml seeds
    view=$(cmctl --format json cluster show --role cassandra --env "$ENVIRONMENT")
    gone=$(jq -r '.[] | select(.ordinal == 0) | .node' <<<"$view")
    [[ -n $gone ]] || fail "the ring has a member with ordinal 0" "$view"
    cmctl node retire "$gone" >/dev/null || fail "cmctl node retire $gone"
    boot cassandra "$new"
    converged "$new"
    view=$(cmctl --format json cluster show --role cassandra --env "$ENVIRONMENT")
    jq -e --arg n "$new" --arg g "$gone" '.[] | select(.node == $n) | .ordinal == 0 and .replaces == $g' <<<"$view" >/dev/null ||
        fail "$new: takes ordinal 0 and replaces $gone" "$view"
    docker exec "$new" grep -q "replace_address_first_boot=${ADDRESS[$gone]}\"" /etc/default/cassandra ||
        fail "$new: boots replacing ${ADDRESS[$gone]}" "$(docker exec "$new" cat /etc/default/cassandra)"
    seeds=$(jq -r '[sort_by(.ordinal)[] | select(.ordinal == 1 or .ordinal == 2) | "\(.address):7000"] | join(",")' <<<"$view")
    yaml=$(docker exec "$new" cat /etc/cassandra/cassandra.yaml)
    grep -qx "      - seeds: \"$seeds\"" <<<"$yaml" ||
        fail "$new: its seeds are the two other members, not itself" "expected $seeds" "$(grep 'seeds:' <<<"$yaml")"
    pass "$new: replaces the retired seed $gone (ordinal 0, replace_address_first_boot), seeds $seeds"
}

# --- s3sync ------------------------------------------------------------------------

# job NODE NAME: the command of cron.d job NAME on NODE, as cron would run it.
job() { docker exec "$1" sed -n '/^[0-9*]/ s/^\([^ ]* \)\{6\}//p' "/etc/cron.d/$2"; }

# s3ls NODE URL: s3cmd ls on NODE with the cookbook's configuration.
s3ls() { docker exec "$1" s3cmd --config /etc/s3sync/s3cfg ls -r "$2"; }

stage_s3sync() {
    local node=$RUN_ID-bak1 gateway endpoint attrs copies listing secret
    say "== s3sync: $node shipping logs and backups to moto_server"
    gateway=$(docker network inspect -f '{{(index .IPAM.Config 0).Gateway}}' "$NETWORK")
    # A real S3 API on the network's gateway, with bucket cm-test, for as
    # long as this run (scripts/with-s3.sh, as the server's tests use).
    # The inner shell becomes `sleep`, whose end (stop_s3) ends with-s3.sh,
    # which then stops moto_server.
    # shellcheck disable=SC2016 # expanded by the inner sh
    CM_TEST_S3_HOST=$gateway "$REPO/scripts/with-s3.sh" \
        sh -c 'echo "$$" >"$1"; echo "$CM_TEST_S3_ENDPOINT" >"$0"; exec sleep 3600' \
        "$SCRATCH/s3-endpoint" "$SCRATCH/s3-sleep.pid" >"$SCRATCH/with-s3.log" 2>&1 &
    S3_PID=$!
    wait_until 120 test -s "$SCRATCH/s3-endpoint" || fail "with-s3.sh starts moto_server" "$(cat "$SCRATCH/with-s3.log")"
    endpoint=$(sed 's|^http://||' "$SCRATCH/s3-endpoint")
    for secret in s3sync_access_key s3sync_secret_key; do
        printf testing | docker exec -i "$SERVER" cmctl secret set "$secret" --role backup >/dev/null ||
            fail "cmctl secret set $secret --role backup"
    done
    attrs=$(jq -nc --arg e "$endpoint" '{s3sync: {bucket: "cm-test", endpoint: $e, use_https: false,
        syncs: [{name: "apt-logs", dir: "/var/log/apt"}],
        backups: [{name: "hostname", command: "cat /etc/hostname", keep: 2}]}}')
    set_role_attributes backup "$attrs"
    boot backup "$node"
    converged "$node"
    idempotent "$node"

    docker exec "$node" sh -c "$(job "$node" s3sync-apt-logs)" || fail "$node: the sync job runs"
    listing=$(s3ls "$node" "s3://cm-test/nodes/$node/apt-logs/")
    grep -q "/apt-logs/history.log$" <<<"$listing" || fail "$node: s3cmd ls shows the synced logs" "$listing"
    pass "$node: the sync job uploaded /var/log/apt: $(wc -l <<<"$listing") objects"

    for _ in 1 2 3; do
        docker exec "$node" sh -c "$(job "$node" s3sync-backup-hostname)" || fail "$node: the backup job runs"
        sleep 1.1 # copies are named by the second
    done
    listing=$(s3ls "$node" "s3://cm-test/nodes/$node/backups/hostname/")
    copies=$(grep -c -E '/hostname-[0-9]{8}T[0-9]{6}Z\.gz$' <<<"$listing" || true)
    [[ $copies == 2 ]] || fail "$node: three backups keep the newest 2 copies" "$listing"
    docker exec "$node" sh -c "s3cmd --config /etc/s3sync/s3cfg --quiet get --force \
        \"\$(s3cmd --config /etc/s3sync/s3cfg ls s3://cm-test/nodes/$node/backups/hostname/ | awk '{print \$4}' | sort | tail -n 1)\" /tmp/newest.gz &&
        gunzip -c /tmp/newest.gz" | grep -qx "$node" || fail "$node: the newest copy holds the command's output"
    pass "$node: three backups keep the newest 2 copies, and the newest holds the command's output"
}

# --- figures -----------------------------------------------------------------------

# apt-cacher-ng logs a line per transfer: TIME|O|BYTES|CLIENT|PATH to a
# client, TIME|I|BYTES|CLIENT|PATH from the mirror.
cache_log() { docker exec "$APTCACHE" cat /var/log/apt-cacher-ng/apt-cacher.log; }

# fetched NODE: what NODE fetched through the cache so far (read when it
# has converged: a stopped node's address may be given to a later one).
fetched() {
    figure "$1: fetched through the package cache" \
        "$(cache_log | awk -F'|' -v ip="${ADDRESS[$1]}" '$2 == "O" && $4 == ip { b += $3 }
            END { printf "%.1f", b / 1e6 }')" MB
}

cache_figures() {
    figure "the cache: fetched from the mirror, all nodes" \
        "$(cache_log | awk -F'|' '$2 == "I" { b += $3 } END { printf "%.1f", b / 1e6 }')" MB
}

# The exit trap: moto_server stopped, then lib.sh's cleanup with the
# script's exit status (stop_s3 would have replaced $?).
on_exit() {
    local rc=$?
    stop_s3
    cleanup "$rc"
}

stop_s3() {
    [[ -n $S3_PID ]] || return 0
    kill "$(cat "$SCRATCH/s3-sleep.pid" 2>/dev/null)" 2>/dev/null || kill "$S3_PID" 2>/dev/null || true
    wait "$S3_PID" 2>/dev/null || true
}

# --- main --------------------------------------------------------------------------

main() {
    parse_args "$@"
    trap on_exit EXIT
    SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/$RUN_ID.XXXXXX")
    local start stage
    start=$(now)
    need_tools
    command -v curl >/dev/null || fail "curl is missing (apt-get install curl)"
    build_images
    start_server
    start_aptcache
    push_repository
    for stage in "${STAGES[@]}"; do
        "stage_$stage"
    done
    cache_figures
    timing "whole run" "$(seconds_since "$start")"
    say "timings:"
    printf '  %s\n' "${TIMINGS[@]}"
    echo "PASS: cookbooks on real nodes"
}

main "$@"
