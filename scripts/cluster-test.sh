#!/usr/bin/env bash
# The container cluster tests, run by scripts/test.sh after the unit and
# in-process tests (CM_SKIP_CLUSTER=1 skips them there). Packages the dev
# build scripts/test.sh has just made (scripts/package.sh, checked with
# lintian), and the containers install those packages; builds the images
# when they are missing (a few minutes on a fresh machine, seconds after).
# Needs root and a Docker engine. Arguments go to tests/cluster/scenario.sh;
# then tests/cluster/packages.sh tests the packages themselves (install,
# sandbox, upgrade, removal), tests/cluster/providers.sh runs the provider
# tests in node containers, scripts/try-role.sh tries one role, and
# tests/cluster/cookbooks.sh the repository's cookbooks on real nodes.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir=${CARGO_TARGET_DIR:-target}/debug

if ! docker info >/dev/null 2>&1; then
    echo "cluster-test: no Docker engine reachable (root and a running dockerd are needed);" >&2
    echo "cluster-test: set CM_SKIP_CLUSTER=1 to run scripts/test.sh without the cluster tests" >&2
    exit 1
fi
for bin in cm-agent cm-server cmctl; do
    [[ -x $target_dir/$bin ]] || { echo "cluster-test: $target_dir/$bin is missing: cargo build --workspace first" >&2; exit 1; }
done

debs=${CARGO_TARGET_DIR:-target}/debian
previous=${CARGO_TARGET_DIR:-target}/debian-previous
rm -rf "$debs" "$previous"
scripts/package.sh --lintian --out "$debs" >/dev/null
# The upgrade test's previous package: this tree's agent numbered as the
# last release of the previous minor version.
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
scripts/package.sh --agent-as "$(awk -F. '{ print $1 "." $2 - 1 ".99" }' <<<"$version")" --out "$previous" >/dev/null
# The scenario builds the images the other tests start from.
tests/cluster/scenario.sh --packages "$debs" "$@"
tests/cluster/packages.sh --packages "$debs" --previous "$previous"
# The engine's provider tests on real node containers (sysv and systemd).
tests/cluster/providers.sh
# The cookbook author's loop: the web role beside two stand-in memcached peers.
scripts/try-role.sh web --packages "$debs" \
    --peers tests/cluster/try/memcached-peers.yaml --checks tests/cluster/try/web-checks.yaml
# The cookbooks, checked by each service's own client.
tests/cluster/cookbooks.sh --packages "$debs"
