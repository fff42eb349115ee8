#!/usr/bin/env bash
# The end-to-end scenario (issue 5): a server container and nodes that make
# themselves memcached servers from nothing but their user-data.
#
#   1. images.sh --with-packages PACKAGES_DIR (builds what is missing, then
#      the :test images with the freshly built binaries);
#   2. a private docker network and a server container (cm-server:test),
#      waited for on /healthz;
#   3. as an admin would, with cmctl inside the server container: push the
#      repository's cookbooks, set its roles and environments, and print the
#      user-data with `cmctl userdata --role memcached --env production`;
#   4. for each node kind (sysv: no init daemon; systemd: systemd as PID 1,
#      the agent runs as its unit) boot a node with only that user-data and
#      check from outside: memcached answers `stats` on 11211, the server
#      lists the node with a successful run, a second converge changes
#      nothing; then change the role's memory with cmctl and wait until the
#      node follows by itself (watch stream): the new limit_maxbytes in
#      `stats`, and the newest run report's cause is new_plan;
#   5. faults (skipped with --no-faults): a node that boots while the server
#      is down waits, then enrolls and converges by itself, and the running
#      nodes follow a role change after the server's restart;
#   6. after a reboot (docker restart) of each node, memcached and the agent
#      come back;
#   7. fault: a node whose user-data carries a wrong token says why on its
#      console, and the agent is not left running or restarting;
#   8. fault: a node that cannot reach the Debian mirror (on an --internal
#      network with only the server) reports a failed run that names apt and
#      the package; once it is connected to the normal network, the agent's
#      retry converges it with no admin action.
#
# Prints PASS/FAIL per check and the measured timings. Exits non-zero on the
# first failed check, after printing the server's log and the nodes'
# consoles. Containers and the network (label cm.scenario=RUN_ID) are removed
# on exit unless --keep.
#
# Usage: scenario.sh [--keep] [--only sysv|systemd] [--no-faults]
#                    [--packages DIR]
#   --keep            leave the containers and the network for debugging
#   --only KIND       run one node kind (default: sysv, then systemd)
#   --no-faults       skip the fault scenarios
#   --packages DIR    cm's .deb files, made by scripts/package.sh (default:
#                     the dev build, packaged into target/debian first)
# Environment: CM_SCENARIO_KEEP=1 (as --keep), CM_CONVERGE_TIMEOUT (seconds
# from a node's start to memcached answering, default 300),
# CM_FOLLOW_TIMEOUT (seconds from the role change to the new limit, default
# 120), CM_MIRROR_TIMEOUT (seconds from the mirror's return to memcached
# answering, default 180).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
readonly HERE REPO
readonly TAG=scenario
readonly RUN_ID=cm-scenario-$$
readonly NETWORK=$RUN_ID
readonly NOMIRROR_NETWORK=$RUN_ID-nomirror # --internal: the server only, no way out
readonly SERVER=cm-server-$$
# shellcheck source=tests/cluster/lib.sh
. "$HERE/lib.sh"
readonly ROLE=memcached
readonly ENVIRONMENT=production
readonly MEMCACHED_PORT=11211
readonly CONVERGE_TIMEOUT=${CM_CONVERGE_TIMEOUT:-300}
readonly FOLLOW_TIMEOUT=${CM_FOLLOW_TIMEOUT:-120}
readonly REPORT_TIMEOUT=30 # seconds between memcached answering and the report arriving
readonly SERVER_DOWN=10    # seconds the server is down while a node boots
readonly FAILED_RUN_TIMEOUT=180 # node start -> a failed run reported, without the mirror
readonly MIRROR_TIMEOUT=${CM_MIRROR_TIMEOUT:-180}

KINDS=(sysv systemd)
FAULTS=1
USERDATA= # the user-data every node boots with, in SCRATCH
EXTRA_NETWORKS=("$NOMIRROR_NETWORK")


# memcached_stats NODE: `stats` over TCP from the server container, that is
# from another machine on the network, as a web node would.
memcached_stats() {
    docker exec "$SERVER" timeout 5 bash -c '
        exec 3<>"/dev/tcp/$1/$2" &&
        printf "stats\r\nquit\r\n" >&3 &&
        cat <&3' _ "$1" "$MEMCACHED_PORT"
}
# limit_maxbytes NODE: the cache size memcached runs with, in bytes.
limit_maxbytes() {
    memcached_stats "$1" | tr -d '\r' | awk '$1 == "STAT" && $2 == "limit_maxbytes" { print $3; found = 1 }
        END { exit !found }'
}
limit_is() { [[ $(limit_maxbytes "$1") == "$2" ]]; }



# write_userdata FILE: what an admin puts in an autoscaling group's launch
# template; every node of the scenario boots with it (the token it creates
# serves 100 nodes). --cloud none: a container must never ask the EC2
# metadata service.
write_userdata() {
    cmctl userdata --role "$ROLE" --env "$ENVIRONMENT" --server "$SERVER_URL" --cloud none >"$1" ||
        fail "cmctl userdata --role $ROLE --env $ENVIRONMENT --server $SERVER_URL --cloud none"
    [[ $(head -n 1 "$1") == '#!/bin/bash' ]] ||
        fail "cmctl userdata prints a #!/bin/bash script" "first line: $(head -n 1 "$1")"
}

# set_role_memory MB: the repository's role with memcached.memory_mb = MB,
# set with cmctl. The YAML is edited with the python3 and PyYAML that
# cloud-init brings into the image.
set_role_memory() {
    docker exec "$SERVER" python3 -c '
import sys, yaml
role = yaml.safe_load(open("/tmp/roles/memcached.yaml"))
role.setdefault("attributes", {}).setdefault("memcached", {})["memory_mb"] = int(sys.argv[1])
yaml.safe_dump(role, open("/tmp/memcached-role.yaml", "w"), sort_keys=False)' "$1"
    cmctl role set /tmp/memcached-role.yaml >/dev/null ||
        fail "cmctl role set (memcached.memory_mb: $1)"
}


memcached_answers() {
    running "$1" || fail "$1: the node container is running"
    limit_maxbytes "$1" >/dev/null
}

# wait_converged NODE: memcached answers, the node is listed with a
# successful run.
wait_converged() {
    local node=$1 started took
    started=$(started_at "$node")
    wait_until "$CONVERGE_TIMEOUT" memcached_answers "$node" ||
        fail "$node: memcached answers stats on $MEMCACHED_PORT within ${CONVERGE_TIMEOUT}s of the node's start"
    took=$(seconds_since "$started")
    pass "$node: memcached answers stats on $MEMCACHED_PORT, $took s after the container started"
    timing "$node: container start -> memcached answers" "$took"

    wait_until "$REPORT_TIMEOUT" has_run "$node" ||
        fail "$node: the server has a run report within ${REPORT_TIMEOUT}s" "$(cmctl runs "$node" 2>&1)"
    check_listed "$node"
    check_first_run "$node"
}

check_listed() {
    local node=$1 entry
    entry=$(cmctl --format json node list | jq -c --arg n "$node" '.[] | select(.name == $n)')
    [[ -n $entry ]] || fail "$node: cmctl node list shows the node" "$(cmctl node list 2>&1)"
    jq -e '.state == "active" and .last_run.status == "success"' <<<"$entry" >/dev/null ||
        fail "$node: listed as active with a successful last run" "$entry"
    pass "$node: cmctl node list: active, roles $(jq -c .roles <<<"$entry"), last run success"
}

check_first_run() {
    local node=$1 runs package_ms
    runs=$(runs_json "$node")
    jq -e '.[0].status == "success"' <<<"$runs" >/dev/null ||
        fail "$node: cmctl runs: the newest run succeeded" "$(jq -c '.[0] | del(.report)' <<<"$runs")"
    pass "$node: cmctl runs: $(jq -r '.[0] | "\(.status), \(.resources_changed) of \(.resources_total) changed, cause \(.cause)"' <<<"$runs")"
    # The first converge (the oldest report), and the package resource's
    # share of it: apt-get update, download and install.
    timing "$node: first converge (agent's report)" "$(ms_to_s "$(jq '.[-1].duration_ms' <<<"$runs")")"
    package_ms=$(jq -r '[.[-1].report.resources[]? | select(.type == "package") | .duration_ms]
        | first // empty' <<<"$runs")
    [[ -z $package_ms ]] ||
        timing "$node:   of which package (apt-get update + install)" "$(ms_to_s "$package_ms")"
}

# A second converge, by hand, finds nothing to do. The agent prints its
# envelope (node, cause, plan hash) around the engine's report.
check_second_converge() {
    local node=$1 out
    out=$(docker exec "$node" cm-agent run --once --format json) ||
        fail "$node: cm-agent run --once" "$out"
    jq -e '.report.status == "success" and .report.resources_changed == 0' <<<"$out" >/dev/null ||
        fail "$node: a second converge changes nothing" \
            "$(jq -c '{cause, status: .report.status, changed: [.report.resources[]? | select(.changed)]}' <<<"$out" 2>/dev/null || echo "$out")"
    pass "$node: second converge (cm-agent run --once): success, 0 of $(jq .report.resources_total <<<"$out") resources changed"
}

# follow_role_change NODE MB: change the role's memory; the node converges
# by itself and memcached restarts with the new limit.
follow_role_change() {
    local node=$1 mb=$2 bytes old_plan changed_at took newest
    bytes=$((mb * 1024 * 1024))
    limit_is "$node" "$bytes" && fail "$node: memcached already runs with $mb MiB before the change"
    old_plan=$(runs_json "$node" | jq -r '.[0].plan_hash')
    changed_at=$(now)
    set_role_memory "$mb"
    say "$node: role $ROLE set to memcached.memory_mb=$mb; waiting for the node to follow"
    wait_until "$FOLLOW_TIMEOUT" limit_is "$node" "$bytes" ||
        fail "$node: stats shows limit_maxbytes $bytes within ${FOLLOW_TIMEOUT}s of the role change" \
            "limit_maxbytes: $(limit_maxbytes "$node" 2>&1 || true)"
    took=$(seconds_since "$changed_at")
    pass "$node: stats shows limit_maxbytes $bytes ($mb MiB), $took s after the role change"
    timing "$node: role change -> new limit in stats" "$took"

    wait_until "$REPORT_TIMEOUT" newest_plan_is_not "$node" "$old_plan" ||
        fail "$node: a run report with the new plan within ${REPORT_TIMEOUT}s"
    newest=$(runs_json "$node" | jq -c '.[0] | del(.report)')
    jq -e '.status == "success" and .cause == "new_plan"' <<<"$newest" >/dev/null ||
        fail "$node: the newest run succeeded and its cause is new_plan" "$newest"
    pass "$node: newest run: success, cause new_plan, $(jq .resources_changed <<<"$newest") changed"
}

# node_scenario KIND MB: boot a node of KIND from user-data, check it, then
# change the role's memory to MB and check that it follows.
node_scenario() {
    local kind=$1 mb=$2 node=$RUN_ID-$1
    say "== $kind node $node"
    boot_node "$node" "$kind" "$USERDATA"
    wait_converged "$node"
    check_agent_daemon "$node" "$kind"
    check_second_converge "$node"
    follow_role_change "$node" "$mb"
}

# Every earlier node of the role followed the last change too.
check_role_members_follow() {
    local mb=$1 node
    for node in "${NODES[@]}"; do
        wait_until "$FOLLOW_TIMEOUT" limit_is "$node" $((mb * 1024 * 1024)) ||
            fail "$node: follows the last role change too (memory_mb $mb)"
    done
    pass "every node of the role runs memcached with $mb MiB"
}

# How the agent runs: as the systemd unit on a systemd node, detached on a
# sysv node.
check_agent_daemon() {
    local node=$1 kind=$2
    case $kind in
        systemd)
            docker exec "$node" systemctl is-active --quiet cm-agent ||
                fail "$node: cm-agent.service is active" "$(docker exec "$node" systemctl status cm-agent 2>&1 | tail -n 15)"
            pass "$node: the agent runs as cm-agent.service"
            ;;
        sysv)
            docker exec "$node" pgrep -x cm-agent >/dev/null ||
                fail "$node: a cm-agent process runs"
            pass "$node: the agent runs detached (log /var/log/cm-agent.log)"
            ;;
    esac
    ! docker exec "$node" grep -q '^token:' /etc/cm/agent.yaml ||
        fail "$node: the agent removed the enrollment token from /etc/cm/agent.yaml"
    pass "$node: the enrollment token is gone from /etc/cm/agent.yaml"
}

# agent_running NODE KIND
agent_running() {
    case $2 in
        systemd) docker exec "$1" systemctl is-active --quiet cm-agent ;;
        sysv) docker exec "$1" pgrep -x cm-agent >/dev/null ;;
    esac
}

boots_finished() { docker logs "$1" 2>&1 | grep -c 'Cloud-init v\. .* finished at' || true; }
rebooted() { (($(boots_finished "$1") >= 2)); }

# check_reboot NODE KIND: `docker restart` is a reboot; memcached and the
# agent come back by themselves.
check_reboot() {
    local node=$1 kind=$2 start took
    start=$(now)
    docker restart "$node" >/dev/null
    wait_until 120 rebooted "$node" || fail "$node: rebooted within 120 s"
    wait_until 60 memcached_answers "$node" ||
        fail "$node: memcached answers again within 60 s of the reboot"
    took=$(seconds_since "$start")
    pass "$node: rebooted (docker restart); memcached answers $took s after"
    timing "$node: docker restart -> memcached answers" "$took"
    wait_until 15 agent_running "$node" "$kind" ||
        fail "$node: the agent runs again after the reboot"
    pass "$node: the agent runs again after the reboot"
}

# --- 5. faults ------------------------------------------------------------------

# A node boots while the server is down (stopped, then started again after
# SERVER_DOWN seconds: a server restart for the nodes already running).
# The new node waits and converges with no admin action; the running nodes
# reconnect and follow the next role change.
fault_server_down_at_boot() {
    local mb=$1 node=$RUN_ID-late back took waiting
    say "== fault: a node boots while the server is down ($node)"
    docker stop "$SERVER" >/dev/null
    boot_node "$node" sysv "$USERDATA"
    sleep "$SERVER_DOWN"
    docker start "$SERVER" >/dev/null
    back=$(now)
    wait_until "$SERVER_TIMEOUT" healthy || fail "server answers /healthz again after docker start"
    pass "server restarted after ${SERVER_DOWN} s down, while $node booted"
    wait_until "$CONVERGE_TIMEOUT" memcached_answers "$node" ||
        fail "$node: memcached answers within ${CONVERGE_TIMEOUT}s of the server's return"
    took=$(seconds_since "$back")
    pass "$node: enrolled and converged by itself: memcached answers $took s after the server came back"
    waiting=$(docker logs "$node" 2>&1 | grep -Ei 'unreachable|retry' | tail -n 1) ||
        fail "$node: the console says the agent is waiting for the server"
    pass "$node: the console says it waited: $waiting"
    timing "late: server back -> memcached answers" "$took"
    wait_until "$REPORT_TIMEOUT" has_run "$node" ||
        fail "$node: the server has a run report within ${REPORT_TIMEOUT}s"
    check_listed "$node"
    back=$(now)
    set_role_memory "$mb"
    check_role_members_follow "$mb"
    timing "after the restart: role change -> every node follows" "$(seconds_since "$back")"
}

# spoil_token IN OUT: the user-data IN with one character of its token
# changed, as a typo in a launch template would.
spoil_token() {
    local token bad
    token=$(sed -n 's/^token: "\(.*\)"$/\1/p' "$1")
    [[ -n $token ]] || fail "the harness finds the token line (token: \"...\") in the user-data" "$(cat "$1")"
    if [[ ${token: -1} == A ]]; then bad=${token%?}B; else bad=${token%?}A; fi
    awk -v bad="$bad" '/^token: "/ { print "token: \"" bad "\""; next } { print }' "$1" >"$2"
}

# A user-data whose token is wrong: the agent says why on the console and
# neither keeps running nor restarts.
TOKEN_REFUSED='error: enrollment refused: unknown enrollment token'
fault_wrong_token() {
    local node=$RUN_ID-badtoken userdata=$SCRATCH/badtoken.user-data console
    say "== fault: wrong enrollment token ($node)"
    spoil_token "$USERDATA" "$userdata"
    boot_node "$node" sysv "$userdata"
    wait_until 120 docker exec "$node" grep -q 'Cloud-init v\. .* finished at' /var/log/cloud-init-output.log ||
        fail "$node: first boot finished within 120 s"
    console=$(docker logs "$node" 2>&1)
    grep -Fq "$TOKEN_REFUSED" <<<"$console" ||
        fail "$node: the console says '$TOKEN_REFUSED'" "$(tail -n 20 <<<"$console")"
    pass "$node: the console says why: $(grep -F "$TOKEN_REFUSED" <<<"$console" | tail -n 1)"
    sleep 5 # a spinning agent would have restarted by now
    ! docker exec "$node" pgrep -x cm-agent >/dev/null ||
        fail "$node: no cm-agent process is left running" "$(docker exec "$node" ps -ef)"
    [[ $(grep -Fc "$TOKEN_REFUSED" <<<"$(docker logs "$node" 2>&1)") == 1 ]] ||
        fail "$node: the agent says it once and does not retry in a loop" "$(docker logs "$node" 2>&1 | tail -n 20)"
    pass "$node: no agent left running, no retry loop"
    ! cmctl --format json node list | jq -e --arg n "$node" 'any(.[]; .name == $n)' >/dev/null ||
        fail "$node: the server does not list the node"
    pass "$node: the server does not list it"
}

# newest_run_is NODE STATUS: the node's newest run report has STATUS.
newest_run_is() { runs_json "$1" | jq -e --arg s "$2" '.[0].status == $s' >/dev/null; }
# run_error RUN_JSON: why a run failed, one line: the failed resource and its
# error, else the run's own error.
run_error() {
    jq -r '[(.report.resources[]? | select(.error) | "\(.type)[\(.name)]: \(.error)"), .report.error // empty]
        | first // empty | gsub("\\s+"; " ") | sub(" $"; "")' <<<"$1"
}
memcached_process() { docker exec "$1" pgrep -x memcached >/dev/null; }
# default_route_via NODE GATEWAY
default_route_via() { [[ $(docker exec "$1" ip route show default) == "default via $2 "* ]]; }

# The Debian mirror unreachable: a node boots on an --internal network (no
# route out, the embedded DNS forwards nothing) where the server is also
# connected, as cm-server. It enrolls, and its first run fails at the
# package resource. Then the node is connected to the scenario's network:
# Docker moves its default route there (an internal network's gateway ranks
# last), the mirror is back, and the agent's retry of a failed run (10 s
# doubling to 5 min) converges it with no admin action.
fault_mirror_unreachable() {
    local node=$RUN_ID-nomirror failed error gateway back took newest
    say "== fault: the Debian mirror unreachable ($node)"
    docker network create --internal --label "cm.scenario=$RUN_ID" "$NOMIRROR_NETWORK" >/dev/null
    docker network connect --alias "$SERVER_ALIAS" "$NOMIRROR_NETWORK" "$SERVER"
    # The resolver's options only make a lookup fail in 1 s instead of 10-20 s
    # (nobody answers for deb.debian.org on an internal network): apt-get
    # update then gives up in ~15 s, not ~2 min, and the agent runs it twice.
    boot_node "$node" sysv "$USERDATA" "$NOMIRROR_NETWORK" --dns-opt timeout:1 --dns-opt attempts:1
    ! docker exec "$node" getent hosts deb.debian.org >/dev/null ||
        fail "$node: deb.debian.org cannot be resolved from the internal network"

    wait_until "$FAILED_RUN_TIMEOUT" newest_run_is "$node" failed ||
        fail "$node: the server lists a failed run within ${FAILED_RUN_TIMEOUT}s of the node's start" \
            "$(cmctl runs "$node" 2>&1)"
    timing "nomirror: container start -> failed run reported" "$(seconds_since "$(started_at "$node")")"
    failed=$(runs_json "$node" | jq -c '.[0]')
    error=$(run_error "$failed")
    [[ $error == *apt* && $error == *memcached* ]] ||
        fail "$node: the failed run's error names apt and the package" "${error:-no error in the report}" "$failed"
    pass "$node: cmctl runs: failed after $(ms_to_s "$(jq .duration_ms <<<"$failed")") s: $error"
    [[ $error == *mirror* || $error == *"Failed to fetch"* ]] ||
        fail "$node: the error says the mirror cannot be reached" "$error"
    pass "$node: the error says the mirror cannot be reached"
    if memcached_process "$node" || memcached_answers "$node" 2>/dev/null; then
        fail "$node: memcached is not running without the mirror"
    fi
    pass "$node: memcached is not running"

    # The mirror comes back: the scenario's network has a way out.
    gateway=$(docker network inspect -f '{{(index .IPAM.Config 0).Gateway}}' "$NETWORK")
    docker network connect "$NETWORK" "$node"
    back=$(now)
    default_route_via "$node" "$gateway" ||
        fail "$node: the default route goes through $NETWORK ($gateway) after docker network connect" \
            "$(docker exec "$node" ip route 2>&1)"
    pass "$node: connected to $NETWORK; default route via $gateway"
    wait_until "$MIRROR_TIMEOUT" memcached_answers "$node" ||
        fail "$node: memcached answers within ${MIRROR_TIMEOUT}s of the mirror's return" \
            "$(cmctl runs "$node" 2>&1)"
    took=$(seconds_since "$back")
    pass "$node: memcached answers $took s after the mirror came back (no admin action)"
    timing "nomirror: mirror back -> memcached answers" "$took"

    wait_until "$REPORT_TIMEOUT" newest_run_is "$node" success ||
        fail "$node: the newest run report is a success within ${REPORT_TIMEOUT}s" "$(cmctl runs "$node" 2>&1)"
    newest=$(runs_json "$node" | jq -c '.[0] | del(.report)')
    pass "$node: newest run: success, cause $(jq -r .cause <<<"$newest"), $(jq .resources_changed <<<"$newest") changed, after $(runs_json "$node" | jq '[.[] | select(.status == "failed")] | length') failed run(s)"
    # The daemon, not an admin, ran it again: its log says why it converged.
    docker exec "$node" grep -q 'retrying a failed run' /var/log/cm-agent.log ||
        fail "$node: the agent log says it retried the failed run" \
            "$(docker exec "$node" tail -n 20 /var/log/cm-agent.log 2>&1 | sed 's/\x1b\[[0-9;]*m//g')"
    pass "$node: the agent retried by itself (cause \"retrying a failed run\" in /var/log/cm-agent.log)"
}

# --- main -----------------------------------------------------------------------

parse_args() {
    while (($#)); do
        case $1 in
            --keep) KEEP=1 ;;
            --only)
                [[ ${2:-} == sysv || ${2:-} == systemd ]] || { echo "--only sysv|systemd" >&2; exit 2; }
                KINDS=("$2")
                shift
                ;;
            --no-faults) FAULTS=0 ;;
            --packages) PACKAGES_DIR=$2; shift ;;
            -h | --help)
                sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
                exit 0
                ;;
            *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
        esac
        shift
    done
}

main() {
    parse_args "$@"
    trap cleanup EXIT
    SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/$RUN_ID.XXXXXX")
    USERDATA=$SCRATCH/user-data
    local start mb=96 kind
    start=$(now)
    need_tools
    build_images
    start_server
    push_repository
    write_userdata "$USERDATA"
    pass "cmctl userdata --role $ROLE --env $ENVIRONMENT --cloud none: a #!/bin/bash user-data"
    for kind in "${KINDS[@]}"; do
        # A new value for each node; the earlier nodes follow as well.
        mb=$((mb + 32))
        node_scenario "$kind" "$mb"
    done
    check_role_members_follow "$mb"
    ((FAULTS == 0)) || fault_server_down_at_boot $((mb + 32))
    for kind in "${KINDS[@]}"; do
        check_reboot "$RUN_ID-$kind" "$kind"
    done
    ((FAULTS == 0)) || fault_wrong_token
    ((FAULTS == 0)) || fault_mirror_unreachable
    timing "whole scenario" "$(seconds_since "$start")"
    say "timings:"
    printf '  %s\n' "${TIMINGS[@]}"
    if ((${#GAPS[@]})); then
        say "known gaps (reported, not failing the scenario):"
        printf '  %s\n' "${GAPS[@]}"
    fi
    echo "PASS: cluster scenario"
}

main "$@"
