#!/usr/bin/env bash
# The gates every change passes before its tests run (scripts/test.sh calls
# this first): formatting, clippy with warnings denied on every target, and
# a shellcheck pass over every shell script of the repository.
#
#   scripts/check.sh            all three
#   scripts/check.sh --quick    formatting and shellcheck only (seconds)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "check: $*" >&2; }

if ! command -v shellcheck >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        say "installing shellcheck"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q shellcheck >/dev/null \
            || { apt-get update -q >/dev/null && apt-get install -y -q shellcheck >/dev/null; }
    else
        say "shellcheck is missing: apt-get install shellcheck"
        exit 1
    fi
fi

say "cargo fmt --check"
cargo fmt --all -- --check

# Every tracked file that is a shell script by name or by its #! line.
mapfile -t scripts < <(
    git ls-files -z | xargs -0 grep -l -I -E '^#!(/usr/bin/env |/bin/)(ba)?sh' 2>/dev/null \
        | grep -v -E '\.(md|rs|hbs|yaml)$' || true
)
say "shellcheck on ${#scripts[@]} scripts"
shellcheck -x "${scripts[@]}"

if [ "${1:-}" != --quick ]; then
    say "cargo clippy --workspace --all-targets -- -D warnings"
    cargo clippy --workspace --all-targets -- -D warnings
fi
