#!/usr/bin/env bash
# Runs a command next to a throwaway S3-compatible server, so the blob store
# is tested against a real S3 API instead of a mock (docs/decisions.md, "Real
# services, started by the test script"):
#
#   scripts/with-s3.sh cargo test -p cm-server --test blobs
#
# moto[server] from PyPI lives in a cached virtualenv (first run installs it,
# later runs reuse it); the server listens on a free loopback port with an
# empty bucket and dies with this script. The command sees:
#   CM_TEST_S3_ENDPOINT  http://127.0.0.1:PORT (CM_TEST_S3_HOST, when set, is
#                        the address to listen on instead: a container
#                        test's network gateway, tests/cluster/cookbooks.sh)
#   CM_TEST_S3_BUCKET    the bucket, already created
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_DEFAULT_REGION
#                        test values (moto accepts any)
# Set CM_TEST_CACHE to put the virtualenv elsewhere than ~/.cache/cm-test.
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

cache="${CM_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cm-test}"
venv="$cache/moto-venv"
moto_spec='moto[server]==5.*'
bucket="${CM_TEST_S3_BUCKET:-cm-test}"

# A virtualenv is not relocatable (its scripts name their own path), so it is
# built in place; the marker says the install finished, and the lock keeps
# two concurrent runs from building it over each other.
mkdir -p "$cache"
(
    flock 9
    if [ ! -f "$venv/.installed" ] || [ "$(cat "$venv/.installed")" != "$moto_spec" ]; then
        echo "with-s3: installing $moto_spec into $venv" >&2
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet "$moto_spec"
        echo "$moto_spec" >"$venv/.installed"
    fi
) 9>"$cache/moto-venv.lock"

host="${CM_TEST_S3_HOST:-127.0.0.1}"
port="$(python3 -c 'import socket, sys; s = socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$host")"
endpoint="http://$host:$port"
log="$(mktemp -t cm-moto.XXXXXX.log)"

"$venv/bin/moto_server" -H "$host" -p "$port" >"$log" 2>&1 &
moto_pid=$!

# shellcheck disable=SC2317 # called by the EXIT trap
stop_moto() {
    kill "$moto_pid" 2>/dev/null || true
    wait "$moto_pid" 2>/dev/null || true
    rm -f "$log"
}
trap stop_moto EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Local only: a proxy from the environment must never see these requests.
export NO_PROXY="$host,127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"
curl_local() { curl --noproxy '*' --silent --show-error --max-time 5 "$@"; }

for _ in $(seq 1 150); do
    if ! kill -0 "$moto_pid" 2>/dev/null; then
        echo "with-s3: moto_server exited before answering:" >&2
        cat "$log" >&2
        exit 1
    fi
    if curl_local --output /dev/null "$endpoint/" 2>/dev/null; then
        break
    fi
    sleep 0.2
done
if ! curl_local --output /dev/null "$endpoint/"; then
    echo "with-s3: moto_server did not answer on $endpoint within 30 s:" >&2
    cat "$log" >&2
    exit 1
fi

# moto checks no signatures, so a plain PUT creates the bucket.
curl_local --fail --output /dev/null -X PUT "$endpoint/$bucket"

export CM_TEST_S3_ENDPOINT="$endpoint"
export CM_TEST_S3_BUCKET="$bucket"
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT AWS_ENDPOINT_URL
echo "with-s3: moto on $endpoint, bucket $bucket" >&2

# Not exec: the EXIT trap has to stop moto when the command ends.
set +e
"$@"
status=$?
set -e
exit "$status"
