#!/usr/bin/env bash
# Where a no-op converge of the 200-resource bench workload spends its
# time (bench/README.md, "Where the agent's no-op goes"): the agent built
# as nodes get it (--profile agent) but with symbols, run RUNS times under
# `perf record`, then the hottest functions and, when inferno is installed
# (`cargo install inferno`), a flamegraph SVG.
#
#   scripts/profile-agent.sh [OUT_DIR] [RUNS]     default: target/profile-agent, 50
#
# Needs perf (Debian: linux-perf) and kernel.perf_event_paranoid <= 2.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/profile-agent}
runs=${2:-50}
mkdir -p "$out"
out=$(cd "$out" && pwd)

command -v perf >/dev/null || { echo "profile-agent.sh: perf is missing (apt-get install linux-perf)" >&2; exit 1; }

# The shipped profile, not stripped, with line tables: same code, named.
CARGO_PROFILE_AGENT_STRIP=false CARGO_PROFILE_AGENT_DEBUG=line-tables-only \
    cargo build -q --profile agent -p cm-agent --target-dir target/profile
agent=$PWD/target/profile/agent/cm-agent

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
CM_BENCH_WORKLOAD=$work cargo bench -q -p cm-agent --bench converge

# RUNS no-op converges in one recording, so short phases add up.
cat >"$work/noop.sh" <<RUNS
#!/bin/sh
"$agent" apply --run-list bench --format json --cookbooks "$work/cookbooks" \\
    --attributes "$work/attrs.yaml" --backup-dir "$work/backup" --lock-file "$work/lock" >/dev/null
for _ in \$(seq $runs); do
    "$agent" apply --run-list bench --format json --cookbooks "$work/cookbooks" \\
        --attributes "$work/attrs.yaml" --backup-dir "$work/backup" --lock-file "$work/lock" >/dev/null
done
RUNS
perf record -q -F 9999 -g --call-graph dwarf,16384 -o "$out/perf.data" -- sh "$work/noop.sh" 2>/dev/null
perf report -i "$out/perf.data" --comm cm-agent --stdio --no-children --sort dso,symbol \
    --percent-limit 1.5 \
    2>/dev/null | grep -v '^$' | grep -v '^#' | grep '%' | head -40 | tee "$out/hottest.txt"
perf script -i "$out/perf.data" 2>/dev/null >"$out/perf.script"
if command -v inferno-collapse-perf >/dev/null; then
    inferno-collapse-perf "$out/perf.script" >"$out/stacks.folded"
    inferno-flamegraph "$out/stacks.folded" >"$out/flamegraph.svg"
    echo "flamegraph: $out/flamegraph.svg"
fi
echo "profile: $out/perf.data (perf report -i $out/perf.data), hottest: $out/hottest.txt"
