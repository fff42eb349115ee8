#!/usr/bin/env bash
# The README's first command: the main job on the embedded default, on this
# machine, without containers. An embedded cm-server in a throwaway dir, the
# bundled cookbooks, roles and environments pushed as an admin would, a
# token and the user-data a node would boot with, then a local agent that
# enrolls with it and converges the memcached role in why-run (showing the
# diffs, changing nothing). Everything lives in one temp dir, removed at the
# end; nothing is left running.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\e[1m' plain=$'\e[0m'; else bold='' plain=''; fi
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }

# CM_BIN_DIR: binaries already built (CI builds the whole workspace first).
if [ -n "${CM_BIN_DIR:-}" ]; then
    bin=$CM_BIN_DIR
else
    step "Building cm-server, cmctl and cm-agent"
    cargo build -q -p cm-server -p cmctl -p cm-agent
    bin="${CARGO_TARGET_DIR:-$PWD/target}/debug"
fi

work=$(mktemp -d /tmp/cm-demo.XXXXXX)
server_pid=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

step "Starting an embedded cm-server (SQLite, local blobs, its own CA) in $work/server"
"$bin/cm-server" --data-dir "$work/server" --tls-name localhost \
    --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --dashboard-listen 127.0.0.1:0 >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 300); do
    grep -q 'serving gRPC on' "$work/server.log" && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
    sleep 0.1
done
port=$(sed -n 's/.*serving gRPC on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/server.log")
[ -n "$port" ] || { cat "$work/server.log"; exit 1; }
grep -E 'serving|fingerprint|credential' "$work/server.log" | sed 's/^/    /'
url="https://localhost:$port"
export CM_CREDENTIAL="$work/server/admin.credential"
cmctl() { "$bin/cmctl" --server "$url" "$@"; }

step "Pushing the bundled cookbooks, roles and environments (cmctl)"
for dir in cookbooks/*/; do cmctl push cookbook "$dir"; done
for file in roles/*.yaml; do cmctl role set "$file"; done
for file in environments/*.yaml; do cmctl env set "$file"; done

step "The user-data an autoscaling group's nodes would boot with (cmctl userdata)"
cmctl userdata --role memcached --env production --cloud none --uses 1 --ttl 10m \
    >"$work/user-data"
# The token is a secret even here: show the script without it.
sed 's/^token: .*/token: "(hidden)"/' "$work/user-data" | sed 's/^/    /'

step "A local agent enrolls with that token and converges the memcached role in why-run"
# The settings the user-data would write to /etc/cm/agent.yaml, kept in the temp dir.
sed -n '/^server:/,/^cloud:/p' "$work/user-data" >"$work/agent.yaml"
status=0
"$bin/cm-agent" run --once --why-run --config "$work/agent.yaml" \
    --state-dir "$work/agent" --backup-dir "$work/backup" --lock-file "$work/agent.lock" || status=$?

step "The server's view of the fleet (cmctl node list)"
cmctl node list

step "Next steps for an operator"
cat <<'EOF'
    cm-server --data-dir /var/lib/cm/server --tls-name cm.example.com   # a real server
    cmctl push cookbook cookbooks/memcached                            # after each cookbook change
    cmctl role set roles/memcached.yaml                                # run lists and attributes
    cmctl env set environments/production.yaml                         # version pins
    cmctl userdata --role memcached --env production > user-data       # for the launch template
    cmctl node list; cmctl runs NODE; cmctl node explain NODE memcached.memory_mb
    tests/cluster/scenario.sh                                          # the same on container nodes
EOF
exit "$status"
