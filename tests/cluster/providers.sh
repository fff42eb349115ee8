#!/usr/bin/env bash
# Runs the engine's provider tests for real inside node containers: package
# (apt/dpkg), service, user, group, apt_repository and cron, on a node
# without an init daemon and on a node with systemd as PID 1, where the
# service provider drives real units through systemctl. The test binaries
# are built on the host (same Debian release as the nodes) and copied in.
#
# Usage: tests/cluster/providers.sh [--keep]   (images: tests/cluster/images.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."

keep=false
[[ ${1:-} == --keep ]] && keep=true
run_id=cm-providers-$$
nodes=()
cleanup() {
    $keep || for node in "${nodes[@]}"; do docker rm -f "$node" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

say() { printf '[providers %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# The test binaries, from cargo's own report of what it built.
mapfile -t binaries < <(
    cargo test -q -p cm-agent --no-run --message-format=json \
        --test providers_package --test providers_accounts --test providers_apt_repository \
        --test providers_service --test faults 2>/dev/null |
        python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "test" in m["target"]["kind"]:
        print(m["executable"])'
)
((${#binaries[@]} == 5)) || { echo "providers: expected 5 test binaries, got: ${binaries[*]}" >&2; exit 1; }

noop=$(mktemp)
printf '#!/bin/bash\ntrue\n' >"$noop"
failed=0
for kind in sysv systemd; do
    node=$run_id-$kind
    nodes+=("$node")
    say "booting a $kind node ($node)"
    tests/cluster/run-node.sh --wait --kind "$kind" --image "cm-node-$kind:test" "$node" "$noop" >/dev/null
    docker exec "$node" mkdir -p /opt/cm-tests
    for bin in "${binaries[@]}"; do
        docker cp "$bin" "$node:/opt/cm-tests/" >/dev/null
    done
    for bin in "${binaries[@]}"; do
        name=$(basename "$bin")
        # faults: only the cron test (the disk-full one needs a tmpfs mount).
        filter=()
        [[ $name == faults-* ]] && filter=(cron)
        say "$kind: $name ${filter[*]}"
        log=$(mktemp)
        if docker exec "$node" "/opt/cm-tests/$name" --test-threads 1 "${filter[@]}" >"$log" 2>&1; then
            grep -E '^test |skipped:|test result:' "$log" | sed 's/^/    /'
        else
            sed 's/^/    /' "$log"
            say "FAIL: $kind: $name"
            failed=1
        fi
        rm -f "$log"
    done
done
rm -f "$noop"
((failed == 0)) || { say "provider tests failed in a node container"; exit 1; }
say "PASS: provider tests in sysv and systemd node containers"
