#!/usr/bin/env bash
# Runs the commands of the docs' quick starts as a reader would type them,
# so the docs cannot drift from what the binaries do. CI runs it from
# scripts/test.sh, after the tests; the README's own quick start is
# scripts/demo.sh, which test.sh runs too.
#
#   scripts/doc-commands.sh [FILE.md...]     default: docs/*.md
#
# What runs: every ```sh block under a heading that says "Quick start", in
# order, one bash per file with `set -euo pipefail`. The blocks run in a
# scratch directory holding links to the repository's cookbooks/, roles/
# and environments/, with the freshly built binaries first on PATH; what a
# block leaves running in the background is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin="${CARGO_TARGET_DIR:-$root/target}/debug"

say() { echo "doc-commands: $*" >&2; }

for b in cm-server cmctl cm-agent; do
    if [ ! -x "$bin/$b" ]; then
        say "building the binaries"
        cargo build -q -p cm-server -p cmctl -p cm-agent
        break
    fi
done

# The ```sh blocks under "Quick start" headings of one markdown file.
blocks() {
    awk '
        /^#+ / { quick = ($0 ~ /[Qq]uick start/); next }
        quick && /^```sh[[:space:]]*$/ { inside = 1; next }
        inside && /^```/ { inside = 0; print ""; next }
        inside { print }
    ' "$1"
}

if [ $# -eq 0 ]; then
    set -- docs/*.md
fi
ran=0
for doc in "$@"; do
    commands=$(blocks "$doc")
    [ -n "$commands" ] || continue
    scratch=$(mktemp -d /tmp/cm-doc-commands.XXXXXX)
    ln -s "$root/cookbooks" "$root/roles" "$root/environments" "$scratch/"
    {
        echo 'set -euo pipefail'
        # shellcheck disable=SC2016 # expanded by the generated script
        echo 'trap '\''kill $(jobs -p) 2>/dev/null || true; wait'\'' EXIT'
        echo 'set -x'
        echo "$commands"
    } >"$scratch/quick-start.sh"
    say "$doc: running its quick start in $scratch"
    if ! (cd "$scratch" && PATH="$bin:$PATH" bash quick-start.sh); then
        say "$doc: its quick start failed (the script and what it made are in $scratch)"
        exit 1
    fi
    rm -rf "$scratch"
    ran=$((ran + 1))
done
if [ "$ran" -eq 0 ]; then
    say "no quick start found in: $*"
    exit 1
fi
say "$ran quick start(s) ran as written"
