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

# Every tracked file whose first line is a sh or bash #! line. Not a
# template (its golden test runs shellcheck on what it renders) nor a test
# snapshot holding a script further down.
mapfile -t scripts < <(
    git ls-files -z | while IFS= read -r -d '' file; do
        case $file in *.hbs | *.snap) continue ;; esac
        head -n 1 -- "$file" 2>/dev/null | grep -q -E '^#!(/usr/bin/env |/bin/)(ba)?sh' &&
            printf '%s\n' "$file"
    done
)
say "shellcheck on ${#scripts[@]} scripts"
shellcheck -x "${scripts[@]}"

if [ "${1:-}" != --quick ]; then
    say "cargo clippy --workspace --all-targets -- -D warnings"
    cargo clippy --workspace --all-targets -- -D warnings
fi
