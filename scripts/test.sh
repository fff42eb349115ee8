#!/usr/bin/env bash
# The project's test command (the README names it; .ci/run calls it).
# Installs what the tests need on a fresh Debian 12 machine, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."

need_root_tools() {
    # The package and service providers are tested for real, as root.
    if [ "$(id -u)" = 0 ] && ! command -v update-rc.d >/dev/null; then
        apt-get update -q && apt-get install -y -q init-system-helpers
    fi
}

# promtool checks /metrics (tests/tests/metrics.rs). Taken out of Debian's
# prometheus package rather than installing it, which would start a
# Prometheus server on the machine (docs/decisions.md, "promtool").
need_promtool() {
    command -v promtool >/dev/null && return 0
    [ "$(id -u)" = 0 ] || { echo "test.sh: promtool is missing (Debian's prometheus package has it)" >&2; return 0; }
    local dir
    dir=$(mktemp -d)
    (cd "$dir" && { apt-get download prometheus >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && apt-get download prometheus >/dev/null; }; }) &&
        dpkg-deb -x "$dir"/prometheus_*.deb "$dir/root" &&
        install -m 0755 "$dir/root/usr/bin/promtool" /usr/local/bin/promtool
    rm -rf "$dir"
}

# A real headless browser for the dashboard's tests (tests/tests/dashboard_browser.rs).
need_chromium() {
    command -v chromedriver >/dev/null && command -v chromium >/dev/null && return 0
    [ "$(id -u)" = 0 ] || { echo "test.sh: chromium and chromium-driver are missing" >&2; return 0; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null ||
        { apt-get update -q >/dev/null &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; }
}

need_root_tools
need_promtool
need_chromium
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked

# Formatting, clippy and shellcheck first: they fail in seconds or minutes
# where the tests take many.
scripts/check.sh

# One profile for build and tests (decisions.md, "Build profiles"): the dev profile.
cargo build --workspace --all-targets
# Storage tests also run against a real PostgreSQL and a real S3 API (moto):
# the wrappers start both, export their URLs, and stop them afterwards.
# A filter that matches no test is an error, not a green run.
scripts/with-postgres.sh scripts/with-s3.sh \
    cargo nextest run --workspace --no-fail-fast --no-tests=fail "$@"

# The README's first command and the docs' quick starts, run as written.
CM_BIN_DIR="${CARGO_TARGET_DIR:-$PWD/target}/debug" scripts/demo.sh
scripts/doc-commands.sh

# The container cluster: a server and real nodes booted from user-data
# (tests/cluster/README.md). Needs root and Docker; CM_SKIP_CLUSTER=1 skips
# it for quick local runs, never under CI: the systemd provider tests run
# only there.
if [ "${CM_SKIP_CLUSTER:-0}" != 1 ]; then
    scripts/cluster-test.sh
elif [[ "${CI:-}" != "" && "${CI:-}" != false && "${CI:-}" != 0 ]]; then
    echo "test.sh: CM_SKIP_CLUSTER=1 under CI would skip the systemd provider tests" >&2
    exit 1
fi
