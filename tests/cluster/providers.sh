#!/usr/bin/env bash
# Runs the engine's provider tests for real inside node containers: package
# (apt/dpkg), service, user, group, apt_repository and cron, on a node
# without an init daemon and on a node with systemd as PID 1, where the
# service provider drives real units through systemctl. The test binaries
# are built on the host (same Debian release as the nodes) and copied in.
# A test whose init system is not this node's says so and does nothing; the
# run fails unless every test passed, without skipping, on one node kind or
# the other, and unless each run's filter selected a test.
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
# Every test a run selects is listed in $selected ("BINARY TEST KIND"); those
# that passed without skipping in $ran. A test skips when what it needs is
# missing on this node kind (the other kind's init system): support::require
# writes its name and why to the file CM_TEST_SKIPPED names.
selected=$(mktemp)
ran=$(mktemp)
skips=$(mktemp)
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
        # faults: only the cron test (the disk-full one needs a tmpfs mount,
        # which a container may not make; it runs on the test machine).
        filter=()
        [[ $name == faults-* ]] && filter=(cron)
        say "$kind: $name ${filter[*]}"
        log=$(mktemp)
        # --include-ignored: the systemd tests are ignored on the test
        # machine, whose PID 1 is no systemd; here they run.
        if docker exec -e CM_TEST_SKIPPED="/opt/cm-tests/$name.skipped" "$node" \
            "/opt/cm-tests/$name" --include-ignored --test-threads 1 "${filter[@]}" >"$log" 2>&1; then
            grep -E '^test |test result:' "$log" | sed 's/^/    /'
        else
            sed 's/^/    /' "$log"
            say "FAIL: $kind: $name"
            failed=1
        fi
        binary=${name%-*}
        sed -n 's/^test \([^ ]*\) \.\.\. .*/\1/p' "$log" | sed "s/^/$binary /; s/\$/ $kind/" >>"$selected"
        docker exec "$node" cat "/opt/cm-tests/$name.skipped" 2>/dev/null |
            sed "s/^/$binary /; s/\t/ $kind: /" >>"$skips" || true
        sed -n 's/^test \([^ ]*\) \.\.\. ok$/\1/p' "$log" | while read -r test; do
            grep -q "^$binary $test $kind: " "$skips" || echo "$binary $test"
        done >>"$ran"
        if ! grep -q " $kind\$" <(grep "^$binary " "$selected"); then
            say "FAIL: $kind: $name: the filter '${filter[*]}' selected no test"
            failed=1
        fi
        rm -f "$log"
    done
done
rm -f "$noop"
# Each test must have run (passed, not skipped) on at least one node kind.
never_ran=0
while read -r binary test; do
    grep -qx "$binary $test" "$ran" && continue
    say "FAIL: $binary $test ran on no node kind; skipped with:"
    grep "^$binary $test " "$skips" | sed 's/^[^ ]* [^ ]* /    /' || echo "    (no reason given)"
    never_ran=1
done < <(cut -d' ' -f1,2 "$selected" | sort -u)
say "tests run: $(sort -u "$ran" | wc -l) of $(cut -d' ' -f1,2 "$selected" | sort -u | wc -l); skips by node kind:"
sed 's/^/    /' "$skips"
rm -f "$selected" "$ran" "$skips"
((never_ran == 0)) || failed=1
((failed == 0)) || { say "provider tests failed in a node container"; exit 1; }
say "PASS: provider tests in sysv and systemd node containers, each run on at least one"
