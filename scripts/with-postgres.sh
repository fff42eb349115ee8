#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL cluster.
#
#   scripts/with-postgres.sh cargo test -p cm-server --test store
#
# Starts a private cluster from Debian's postgresql packages (installing the
# `postgresql` package with apt-get when no server binaries are found) in a
# temp dir, listening on a free port on 127.0.0.1 only, with a random
# password, creates the database `cm_test`, exports
#
#   CM_TEST_POSTGRES_URL=postgres://postgres:PASSWORD@127.0.0.1:PORT/cm_test
#
# runs the command as the calling user and exits with its status. The
# cluster is stopped and its directory removed on exit, however the command
# ends. The server runs as the `postgres` user when called as root (initdb
# refuses root), as the caller otherwise. It does not touch Debian's own
# clusters (pg_lsclusters), running or not, and several copies may run at
# once. The cluster runs with fsync off: it is for tests only.
set -euo pipefail

say() { echo "with-postgres: $*" >&2; }

if [[ $# -eq 0 ]]; then
    echo "usage: $0 COMMAND [ARG...]" >&2
    exit 2
fi

find_bindir() {
    local dir
    dir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    [[ -n $dir && -x $dir/initdb && -x $dir/pg_ctl ]] && echo "$dir"
    return 0
}

bindir=$(find_bindir)
if [[ -z $bindir ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        say "PostgreSQL's server binaries are missing; install them as root: apt-get install postgresql"
        exit 1
    fi
    say "installing Debian's postgresql package"
    apt_install() {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            -o DPkg::Lock::Timeout=300 postgresql >&2
    }
    apt_install || { apt-get update -q >&2 && apt_install; }
    bindir=$(find_bindir)
    if [[ -z $bindir ]]; then
        say "the postgresql package installed no server binaries under /usr/lib/postgresql"
        exit 1
    fi
fi

if [[ $(id -u) -eq 0 ]]; then
    owner=postgres
    if ! id -u "$owner" >/dev/null 2>&1; then
        say "user $owner does not exist (the postgresql-common package creates it)"
        exit 1
    fi
else
    owner=$(id -un)
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/cm-postgres.XXXXXX")
started=""

# Run a server tool as the cluster's owner, from a directory it can read.
as_owner() {
    if [[ $owner == "$(id -un)" ]]; then
        (cd "$dir" && "$@")
    else
        (cd "$dir" && runuser -u "$owner" -- "$@")
    fi
}

cleanup() {
    local status=$?
    if [[ -n $started ]]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

chmod 700 "$dir"
[[ $owner == "$(id -un)" ]] || chown "$owner" "$dir"

password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
(umask 077 && printf '%s\n' "$password" >"$dir/pwfile")
[[ $owner == "$(id -un)" ]] || chown "$owner" "$dir/pwfile"

if ! as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=scram-sha-256 \
    --pwfile="$dir/pwfile" -E UTF8 --no-locale >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    say "initdb failed"
    exit 1
fi
rm -f "$dir/pwfile"

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

for attempt in $(seq 1 20); do
    port=$((20000 + RANDOM % 40000))
    port_in_use "$port" && continue
    # A port taken between the check and the start makes pg_ctl fail: retry.
    if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o \
        "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null 2>&1; then
        started=yes
        break
    fi
    say "could not start on port $port (attempt $attempt), trying another"
done
if [[ -z $started ]]; then
    cat "$dir/server.log" >&2 2>/dev/null || true
    say "PostgreSQL did not start"
    exit 1
fi

PGPASSWORD=$password "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres cm_test
export CM_TEST_POSTGRES_URL="postgres://postgres:${password}@127.0.0.1:${port}/cm_test"
say "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $dir)"

set +e
"$@"
