#!/usr/bin/env bash
# cm's Debian packages as operators install them (docs/install.md), on node
# containers with systemd as PID 1 and nothing of cm's preinstalled:
#
#   1. The server host: cm-server and cmctl installed with dpkg while port
#      8443 is taken: the install succeeds, the service does not start and
#      the journal says why. Once the port is free the unit becomes active
#      (Type=notify: READY=1), as the cm user with no capability, no new
#      privileges and a read-only root but for its data dir; /etc/cm,
#      /var/lib/cm and server.yaml have their owners and modes; cmctl works
#      as root.
#   2. A node gets the previous cm-agent package (numbered as the previous
#      minor version: scripts/package.sh --agent-as): enabled, not started,
#      since it has no settings. Its user-data (`cmctl userdata`) enrolls it
#      under the package's unit. A cookbook needing the new agent puts it in
#      plan error (the version skew rule).
#   3. The new cm-agent package installed while a run is in progress: the
#      run finishes, every resource of it; the daemon then starts again on
#      the new binary (same pid), the plan error clears and the new cookbook
#      converges.
#   4. server.yaml edited by the operator is kept across an upgrade; removal
#      keeps the state, purge removes it, for both daemons; an agent removed
#      and installed again runs again, one the admin disabled stays so.
#
# Usage: tests/cluster/packages.sh --packages DIR --previous DIR [--keep]
#   --packages DIR   cm-agent, cm-server and cmctl .deb files (scripts/package.sh)
#   --previous DIR   the previous cm-agent .deb (scripts/package.sh --agent-as)
#   --keep           leave the containers and the network
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
readonly HERE REPO
readonly TAG=packages
readonly RUN_ID=cm-pkg-$$
readonly NETWORK=$RUN_ID
readonly SERVER=$RUN_ID-server
readonly NODE=$RUN_ID-node
PREVIOUS_DIR=
# shellcheck source=tests/cluster/lib.sh
. "$HERE/lib.sh"

# On failure, the daemons' journals too.
show_logs() {
    local host unit
    for host in "${NODES[@]}"; do
        for unit in cm-server cm-agent; do
            echo "---- $host: journalctl -u $unit (last 40 lines) ----"
            docker exec "$host" journalctl -u "$unit" --no-pager 2>&1 | tail -n 40
        done
    done | sed 's/\x1b\[[0-9;]*m//g' >&3 || true
}

parse_args() {
    while (($#)); do
        case $1 in
            --packages) PACKAGES_DIR=$2; shift ;;
            --previous) PREVIOUS_DIR=$2; shift ;;
            --keep) KEEP=1 ;;
            -h | --help)
                sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
                exit 0
                ;;
            *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
        esac
        shift
    done
    [[ -d $PACKAGES_DIR && -d $PREVIOUS_DIR ]] || { echo "--packages DIR and --previous DIR are needed (see --help)" >&2; exit 2; }
}

# deb DIR NAME: the one NAME_*.deb in DIR.
deb() {
    local debs=("$1"/"$2"_*.deb)
    [[ -f ${debs[0]} && ${#debs[@]} == 1 ]] || fail "one $2_*.deb in $1" "${debs[*]}"
    echo "${debs[0]}"
}

# on HOST CMD: a shell command on a container.
on() { docker exec "$1" bash -c "$2"; }
# stat_of HOST PATH: owner:group mode.
stat_of() { on "$1" "stat -c '%U:%G %a' $2"; }
main_pid() { on "$1" "systemctl show -p MainPID --value $2"; }

# A node container of the plain image (no cm package): the server host needs
# CAP_SYS_ADMIN for systemd to build the unit's sandbox (mount namespaces),
# as it can on any real host.
boot_host() {
    local name=$1
    shift
    NODES+=("$name")
    "$HERE/run-node.sh" --wait --kind systemd --image cm-node-systemd:bookworm --network "$NETWORK" \
        "$name" "$SCRATCH/noop" -- --label "cm.scenario=$RUN_ID" "$@" >/dev/null ||
        fail "$name: container booted (run-node.sh)"
}

install_server_with_the_port_taken() {
    boot_host "$SERVER" --cap-add SYS_ADMIN
    docker cp "$(deb "$PACKAGES_DIR" cm-server)" "$SERVER:/tmp/cm-server.deb"
    docker cp "$(deb "$PACKAGES_DIR" cmctl)" "$SERVER:/tmp/cmctl.deb"
    on "$SERVER" 'python3 -m http.server 8443 >/dev/null 2>&1 &'
    wait_until 10 on "$SERVER" 'exec 3<>/dev/tcp/127.0.0.1/8443' || fail "something listens on 8443"
    local out
    out=$(on "$SERVER" 'dpkg -i /tmp/cm-server.deb /tmp/cmctl.deb 2>&1') ||
        fail "dpkg -i cm-server cmctl succeeds with port 8443 taken" "$out"
    pass "dpkg -i cm-server cmctl: exit 0 with port 8443 taken"
    [[ $out == *"cm-server did not start; see: journalctl -u cm-server"* ]] ||
        fail "the install says the service did not start" "$out"
    ! on "$SERVER" 'systemctl is-active --quiet cm-server' ||
        fail "cm-server is not active while 8443 is taken"
    wait_until 20 on "$SERVER" 'journalctl -u cm-server | grep -q "binding 0.0.0.0:8443: Address already in use"' ||
        fail "the journal says why" "$(on "$SERVER" 'journalctl -u cm-server --no-pager | tail -n 5')"
    pass "cm-server not started; the journal: $(on "$SERVER" 'journalctl -u cm-server | grep -o "error: binding.*" | head -n 1')"
    on "$SERVER" 'pkill -f "http.server 8443"'
    # Restart=on-failure tries again every 5 s; active means READY=1 came.
    wait_until 30 on "$SERVER" 'systemctl is-active --quiet cm-server' ||
        fail "cm-server active once 8443 is free" "$(on "$SERVER" 'systemctl status cm-server --no-pager' 2>&1)"
    pass "cm-server active (Type=notify) once the port is free"
}

check_server_sandbox() {
    local pid status mounts
    pid=$(main_pid "$SERVER" cm-server)
    status=$(on "$SERVER" "cat /proc/$pid/status")
    [[ $(on "$SERVER" "ps -o user= -p $pid") == cm ]] || fail "cm-server runs as cm"
    if ! { grep -q '^CapEff:[[:space:]]*0000000000000000$' <<<"$status" &&
        grep -q '^CapBnd:[[:space:]]*0000000000000000$' <<<"$status" &&
        grep -q '^NoNewPrivs:[[:space:]]*1$' <<<"$status"; }; then
        fail "no capability, no new privileges" "$(grep -E '^(Cap|NoNew)' <<<"$status")"
    fi
    mounts=$(on "$SERVER" "awk '{print \$5, \$6}' /proc/$pid/mountinfo")
    if ! { grep -q '^/ ro,' <<<"$mounts" && grep -q '^/var/lib/cm/server rw,' <<<"$mounts" &&
        grep -q '^/tmp rw,' <<<"$mounts"; }; then
        fail "the root is read-only to it but for its data dir (and a private /tmp)" "$mounts"
    fi
    pass "cm-server runs as cm, no capabilities, NoNewPrivs, / read-only, /var/lib/cm/server writable"
    [[ $(stat_of "$SERVER" /etc/cm) == "root:cm 750" && $(stat_of "$SERVER" /var/lib/cm) == "root:cm 750" &&
        $(stat_of "$SERVER" /var/lib/cm/server) == "cm:cm 700" &&
        $(stat_of "$SERVER" /etc/cm/server.yaml) == "root:cm 640" ]] ||
        fail "owners and modes" "$(on "$SERVER" 'stat -c "%n %U:%G %a" /etc/cm /var/lib/cm /var/lib/cm/server /etc/cm/server.yaml')"
    pass "/etc/cm root:cm 750, /var/lib/cm/server cm:cm 700, server.yaml root:cm 640"
    cmctl node list >/dev/null || fail "cmctl node list as root on the server host"
    pass "cmctl works with the credential the first start wrote"
}

# The test's cookbooks: `slow` sleeps, then marks its end, so a run cut
# short shows as a missing mark; `skew` needs cm-agent 0.4.0 (htdigest).
push_cookbooks() {
    local dir=$SCRATCH/cookbooks
    mkdir -p "$dir/slow/recipes" "$dir/skew/recipes"
    printf 'name: slow\nversion: 1.0.0\ndescription: a run that takes a while\n' >"$dir/slow/metadata.yaml"
    cat >"$dir/slow/recipes/default.yaml" <<'EOF'
- execute: slow-start
  command: date +%s.%N >> /var/tmp/slow-started
- execute: slow-sleep
  command: sleep 12
- execute: slow-end
  command: date +%s.%N >> /var/tmp/slow-ended
EOF
    printf 'name: skew\nversion: 1.0.0\ndescription: needs cm-agent 0.4.0\n' >"$dir/skew/metadata.yaml"
    cat >"$dir/skew/recipes/default.yaml" <<'EOF'
- file: /var/tmp/skew
  content: "{{htdigest \"u\" \"r\" \"p\"}}\n"
EOF
    printf 'name: production\ndescription: the test\n' >"$dir/env.yaml"
    printf 'name: pkg\ndescription: the test\nrun_list: [slow]\n' >"$dir/role.yaml"
    printf 'name: pkg\ndescription: the test\nrun_list: [slow, skew]\n' >"$dir/role-skew.yaml"
    docker cp "$dir" "$SERVER:/tmp/pkg-cookbooks"
    if ! { cmctl push cookbook /tmp/pkg-cookbooks/slow && cmctl push cookbook /tmp/pkg-cookbooks/skew &&
        cmctl env set /tmp/pkg-cookbooks/env.yaml && cmctl role set /tmp/pkg-cookbooks/role.yaml; } >/dev/null; then
        fail "cookbooks slow and skew pushed, role pkg set"
    fi
}

node_entry() { cmctl --format json node list | jq -c --arg n "$NODE" '.[] | select(.name == $n)'; }
# plan_error_says TEXT: the node's plan error contains TEXT; "": it has none.
plan_error_says() {
    node_entry | jq -e --arg t "$1" 'if $t == "" then .plan_error == null else (.plan_error // "") | contains($t) end' >/dev/null
}
ran_successfully() { runs_json "$NODE" | jq -e 'length > 0 and .[0].status == "success"' >/dev/null; }

install_previous_agent_and_enroll() {
    boot_host "$NODE"
    docker cp "$(deb "$PREVIOUS_DIR" cm-agent)" "$NODE:/tmp/cm-agent-previous.deb"
    on "$NODE" 'dpkg -i /tmp/cm-agent-previous.deb >/dev/null' || fail "dpkg -i the previous cm-agent"
    PREVIOUS=$(on "$NODE" 'cm-agent --version' | awk '{print $2}')
    # Cookbook skew uses htdigest, new in 0.4.0 (docs/cookbooks.md, "Agent
    # versions a cookbook needs"): use a newer feature once that is old.
    [[ $(printf '%s\n' "$PREVIOUS" 0.4.0 | sort -V | head -n 1) == "$PREVIOUS" && $PREVIOUS != 0.4.0 ]] ||
        fail "the skew cookbook needs a feature newer than the previous agent $PREVIOUS"
    [[ $(on "$NODE" 'systemctl is-enabled cm-agent') == enabled ]] || fail "cm-agent enabled by the package"
    on "$NODE" 'systemctl start cm-agent'
    if [[ $(on "$NODE" 'systemctl show -p ConditionResult --value cm-agent') != no ]] ||
        on "$NODE" 'systemctl is-active --quiet cm-agent'; then
        fail "cm-agent not started without /etc/cm/agent.yaml" "$(on "$NODE" 'systemctl status cm-agent --no-pager' 2>&1)"
    fi
    pass "previous cm-agent $PREVIOUS installed: enabled, not started without settings"

    push_cookbooks
    cmctl userdata --role pkg --env production --agent-server "https://$SERVER:8443" >"$SCRATCH/user-data" ||
        fail "cmctl userdata"
    docker cp "$SCRATCH/user-data" "$NODE:/tmp/user-data"
    # What cloud-init does with it at first boot.
    on "$NODE" 'bash /tmp/user-data' >/dev/null 2>&1 || fail "the user-data enrolls the node"
    if [[ $(on "$NODE" 'systemctl show -p FragmentPath --value cm-agent') != /lib/systemd/system/cm-agent.service ]] ||
        on "$NODE" 'test -e /etc/systemd/system/cm-agent.service'; then
        fail "the daemon runs under the package's unit"
    fi
    wait_until 90 ran_successfully || fail "the first run succeeded" "$(runs_json "$NODE" | jq -c '.[0] | del(.report)')"
    pass "user-data enrolled it under the package's unit; first run: success"

    cmctl role set /tmp/pkg-cookbooks/role-skew.yaml >/dev/null || fail "role pkg with skew"
    wait_until 30 plan_error_says "needs cm-agent >= 0.4.0" ||
        fail "a cookbook needing cm-agent 0.4.0 puts the $PREVIOUS agent in plan error" "$(node_entry)"
    pass "plan error: $(node_entry | jq -r .plan_error)"
}

upgrade_agent_during_a_run() {
    local pid before out
    pid=$(main_pid "$NODE" cm-agent)
    before=$(on "$NODE" 'wc -l </var/tmp/slow-ended')
    # The plan error wakes the daemon, which converges its last good plan:
    # wait until that run is in its sleep.
    wait_until 60 on "$NODE" 'pgrep -x sleep' || fail "a run is in progress (slow-sleep)"
    docker cp "$(deb "$PACKAGES_DIR" cm-agent)" "$NODE:/tmp/cm-agent.deb"
    out=$(on "$NODE" 'dpkg -i /tmp/cm-agent.deb 2>&1') || fail "dpkg -i the new cm-agent" "$out"
    on "$NODE" 'pgrep -x sleep >/dev/null' || fail "the run was still in progress when the upgrade ended"
    pass "new cm-agent $(on "$NODE" 'cm-agent --version' | awk '{print $2}') installed during a run"
    wait_until 60 on "$NODE" "[ \$(wc -l </var/tmp/slow-ended) -gt $before ]" ||
        fail "the run in progress finished (slow-end ran)"
    wait_until 60 on "$NODE" "journalctl -u cm-agent | grep -q 'starting again on the installed binary'" ||
        fail "the daemon starts again after the run"
    [[ $(main_pid "$NODE" cm-agent) == "$pid" && $(on "$NODE" "readlink /proc/$pid/exe") == /usr/bin/cm-agent ]] ||
        fail "the same daemon (pid $pid) now runs the new binary" "$(on "$NODE" "readlink /proc/$pid/exe; systemctl show -p MainPID cm-agent")"
    pass "the run finished, then the daemon (pid $pid) started again on the new /usr/bin/cm-agent"
    wait_until 90 on "$NODE" 'test -s /var/tmp/skew' || fail "the new agent converges the skew cookbook"
    wait_until 30 plan_error_says "" ||
        fail "the plan error cleared" "$(node_entry)"
    # A run may be under way (a plan change queued before the restart).
    wait_until 30 on "$NODE" "[ \$(wc -l </var/tmp/slow-started) = \$(wc -l </var/tmp/slow-ended) ]" ||
        fail "every run that started slow ended it"
    pass "plan error cleared; the new agent converged cookbook skew; no run was cut short"
    # The new process listens for SIGHUP too (it was blocked across the exec).
    on "$NODE" 'systemctl reload cm-agent'
    wait_until 60 on "$NODE" "[ \$(journalctl -u cm-agent | grep -c 'starting again on the installed binary') -ge 2 ]" ||
        fail "a second reload starts the daemon again"
    if ! wait_until 30 on "$NODE" 'systemctl is-active --quiet cm-agent' ||
        [[ $(main_pid "$NODE" cm-agent) != "$pid" ]]; then
        fail "still the same daemon (pid $pid), running"
    fi
    pass "a second reload (systemctl reload cm-agent) starts it again, same pid"
}

keep_conffile_and_remove() {
    on "$SERVER" 'echo "keep_runs_days: 7 # the operator" >>/etc/cm/server.yaml'
    on "$SERVER" 'dpkg -i /tmp/cm-server.deb >/dev/null 2>&1' || fail "cm-server reinstalled"
    on "$SERVER" 'grep -q "keep_runs_days: 7 # the operator" /etc/cm/server.yaml' || fail "server.yaml kept"
    wait_until 30 on "$SERVER" 'systemctl is-active --quiet cm-server' || fail "cm-server active after the upgrade"
    pass "the operator's server.yaml kept across an upgrade; cm-server restarted on it"

    on "$NODE" 'dpkg -r cm-agent >/dev/null' || fail "dpkg -r cm-agent"
    wait_until 30 on "$NODE" '! systemctl is-active --quiet cm-agent' || fail "removal stops the agent"
    on "$NODE" 'test -s /etc/cm/agent.yaml && test -d /var/lib/cm/agent' ||
        fail "removal keeps the agent's settings and identity"
    on "$NODE" 'dpkg -i /tmp/cm-agent.deb >/dev/null' || fail "cm-agent installed again"
    wait_until 30 on "$NODE" 'systemctl is-active --quiet cm-agent' ||
        fail "installed again, the agent runs again with the identity it kept"
    on "$NODE" 'systemctl disable --now cm-agent 2>/dev/null && dpkg -i /tmp/cm-agent.deb >/dev/null' ||
        fail "cm-agent disabled by the admin, then installed again"
    if on "$NODE" 'systemctl is-enabled --quiet cm-agent || systemctl is-active --quiet cm-agent'; then
        fail "an upgrade keeps the admin's disable"
    fi
    pass "cm-agent: removed then installed again, it runs again; disabled by the admin, an upgrade leaves it so"
    on "$NODE" 'dpkg -P cm-agent >/dev/null' || fail "dpkg -P cm-agent"
    on "$NODE" '! test -e /etc/cm && ! test -e /var/lib/cm && ! test -e /etc/init.d/cm-agent' ||
        fail "purge removes /etc/cm, /var/lib/cm and the init script" "$(on "$NODE" 'ls -la /etc/cm /var/lib/cm 2>&1')"
    pass "cm-agent: removal kept settings and identity, purge removes them"

    on "$SERVER" 'dpkg -r cm-server >/dev/null' || fail "dpkg -r cm-server"
    on "$SERVER" '! systemctl is-active --quiet cm-server && test -s /var/lib/cm/server/ca.pem && test -f /etc/cm/server.yaml' ||
        fail "removal stops the server and keeps its data dir and server.yaml"
    on "$SERVER" 'dpkg -P cm-server >/dev/null' || fail "dpkg -P cm-server"
    on "$SERVER" '! test -e /var/lib/cm/server && ! test -e /etc/cm/server.yaml' ||
        fail "purge removes the data dir and server.yaml"
    pass "cm-server: removal keeps the data dir and server.yaml, purge removes them"
}

main() {
    parse_args "$@"
    need_tools
    trap cleanup EXIT
    SCRATCH=$(mktemp -d)
    printf '#!/bin/bash\ntrue\n' >"$SCRATCH/noop"
    docker network create --label "cm.scenario=$RUN_ID" "$NETWORK" >/dev/null
    local start=$SECONDS
    install_server_with_the_port_taken
    check_server_sandbox
    install_previous_agent_and_enroll
    upgrade_agent_during_a_run
    keep_conffile_and_remove
    say "all checks passed in $((SECONDS - start)) s"
}

main "$@"
