#!/usr/bin/env bash
# Try a role on a throwaway node: the cookbook author's test loop
# (docs/cookbooks.md, "Trying a role on a throwaway node"). It starts a
# server container, pushes this working tree's cookbooks, roles and
# environments, enrolls the peers of --peers as stand-ins (`cm-agent pose`,
# in the server container) so they are in the cluster view, boots one node
# container from `cmctl userdata --role ROLE`, waits for its first run,
# shows the run's report, runs the role's `checks:` on the node
# (`cm-agent check`), and removes everything unless --keep.
#
# Usage: scripts/try-role.sh ROLE [options]
#   --env ENV             environment (default: staging)
#   --peers FILE          stand-in peers, YAML: a list of
#                           {name, role, address, facts: {...}}
#                         (facts optional; address is what peers see)
#   --attributes JSON     merged into the role's attributes for this try
#   --checks FILE         more checks for this try, YAML: a list as in a
#                         role's `checks:`
#   --secret NAME=FILE    a secret for the role, its value read from FILE
#   --kind systemd|sysv   node image (default: systemd)
#   --timeout SECONDS     for the first run (default: 600)
#   --wait SECONDS        for the checks to pass (default: 60)
#   --packages DIR        cm's .deb files from scripts/package.sh (default:
#                         the dev build, packaged into target/debian first)
#   --apt-proxy URL       the node fetches packages through this proxy
#   --keep                leave the containers and network to look around
#
# Exit status: 0 the first run succeeded and every check passed, 1 not.
# Needs root, a Docker engine and the images (built on first use by
# tests/cluster/images.sh; a few minutes on a fresh machine).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$REPO/tests/cluster
readonly HERE REPO
readonly TAG=try-role
readonly RUN_ID=cm-try-$$
readonly NETWORK=$RUN_ID
readonly SERVER=$RUN_ID-server
# shellcheck source=tests/cluster/lib.sh
. "$HERE/lib.sh"

ROLE=
ENVIRONMENT=staging
PEERS=
ATTRIBUTES=
CHECKS=
SECRETS=()
KIND=systemd
TIMEOUT=600
WAIT=60
APT_PROXY=

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

parse_args() {
    while (($#)); do
        case $1 in
            --env | --peers | --attributes | --checks | --secret | --kind | --timeout | --wait | --packages | --apt-proxy)
                (($# >= 2)) || fail "$1 needs a value (see --help)"
                ;;
        esac
        case $1 in
            --env) ENVIRONMENT=$2; shift ;;
            --peers) PEERS=$(realpath "$2"); shift ;;
            --attributes) ATTRIBUTES=$2; shift ;;
            --checks) CHECKS=$(realpath "$2"); shift ;;
            --secret) SECRETS+=("$2"); shift ;;
            --kind) KIND=$2; shift ;;
            --timeout) TIMEOUT=$2; shift ;;
            --wait) WAIT=$2; shift ;;
            --packages) PACKAGES_DIR=$2; shift ;;
            --apt-proxy) APT_PROXY=$2; shift ;;
            --keep) KEEP=1 ;;
            -h | --help) usage; exit 0 ;;
            -*) fail "unknown option $1 (see --help)" ;;
            *) [[ -z $ROLE ]] || fail "one role at a time (got $ROLE and $1)"; ROLE=$1 ;;
        esac
        shift
    done
    [[ -n $ROLE ]] || { usage >&2; exit 2; }
    [[ -f $REPO/roles/$ROLE.yaml ]] || fail "no roles/$ROLE.yaml in $REPO"
    [[ -f $REPO/environments/$ENVIRONMENT.yaml ]] || fail "no environments/$ENVIRONMENT.yaml in $REPO"
    [[ $KIND =~ ^(systemd|sysv)$ ]] || fail "--kind takes systemd or sysv"
    [[ $TIMEOUT =~ ^[0-9]+$ && $WAIT =~ ^[0-9]+$ ]] || fail "--timeout and --wait take whole seconds"
    [[ -z $PEERS || -r $PEERS ]] || fail "cannot read --peers $PEERS"
    [[ -z $CHECKS || -r $CHECKS ]] || fail "cannot read --checks $CHECKS"
    if [[ -n $ATTRIBUTES ]]; then
        jq -e 'type == "object"' <<<"$ATTRIBUTES" >/dev/null 2>&1 || fail "--attributes: a JSON object, got $ATTRIBUTES"
    fi
}

# The role as this try sets it: the working tree's, with --attributes
# merged into its attributes key by key and --checks appended (python3 and PyYAML come with cloud-init in
# every image).
set_role() {
    local extra=/dev/null
    if [[ -n $CHECKS ]]; then
        docker cp "$CHECKS" "$SERVER:/tmp/extra-checks.yaml"
        extra=/tmp/extra-checks.yaml
    fi
    docker exec "$SERVER" python3 -c '
import json, sys, yaml
def merge(into, over):
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value
role = yaml.safe_load(open(f"/tmp/roles/{sys.argv[1]}.yaml"))
merge(role.setdefault("attributes", {}), json.loads(sys.argv[2] or "{}"))
role["checks"] = (role.get("checks") or []) + (yaml.safe_load(open(sys.argv[3])) or [])
yaml.safe_dump(role, open("/tmp/role.yaml", "w"), sort_keys=False)' "$ROLE" "$ATTRIBUTES" "$extra"
    cmctl role set /tmp/role.yaml >/dev/null || fail "cmctl role set $ROLE (with --attributes and --checks)"
}

set_secrets() {
    local spec name file
    for spec in "${SECRETS[@]}"; do
        name=${spec%%=*} file=${spec#*=}
        [[ $name != "$spec" && -r $file ]] || fail "--secret $spec: NAME=FILE, FILE readable"
        docker exec -i "$SERVER" cmctl secret set "$name" --role "$ROLE" <"$file" >/dev/null ||
            fail "cmctl secret set $name --role $ROLE"
    done
}

# Each peer enrolls with a one-use token for its role and reports facts
# made of the file's entry: a stand-in that heartbeats and never converges.
# Names are checked as cm checks node names before they make paths; the
# token reaches cm-agent through a file and its environment, never argv.
add_peers() {
    [[ -n $PEERS ]] || return 0
    local fingerprint=$1 names name role token
    docker cp "$PEERS" "$SERVER:/tmp/peers.yaml"
    names=$(docker exec "$SERVER" python3 -c '
import ipaddress, os, re, sys, yaml
peers = yaml.safe_load(open("/tmp/peers.yaml")) or []
if not isinstance(peers, list):
    sys.exit("--peers: a list of {name, role, address, facts}")
os.makedirs("/tmp/peers", exist_ok=True)
seen = set()
for i, p in enumerate(peers):
    if not isinstance(p, dict):
        sys.exit(f"--peers entry {i}: a map of name, role, address and facts")
    unknown = set(p) - {"name", "role", "address", "facts"}
    if unknown or not {"name", "role", "address"} <= set(p):
        sys.exit(f"--peers entry {i}: name, role and address, optionally facts (got {sorted(p)})")
    for key in ("name", "role"):
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,63}", str(p[key])):
            sys.exit(f"--peers entry {i}: {key} {p[key]!r}: lowercase letters, digits, - and _, starting with a letter")
    if p["name"] in seen:
        sys.exit(f"--peers entry {i}: name {p['"'"'name'"'"']} is taken by an earlier entry")
    seen.add(p["name"])
    try:
        ipaddress.IPv4Address(p["address"])
    except ValueError as e:
        sys.exit(f"--peers entry {i}: address: {e}")
    facts = dict(p.get("facts") or {}, hostname=p["name"], ipaddress=p["address"])
    yaml.safe_dump(facts, open(f"/tmp/peers/{p['"'"'name'"'"']}.yaml", "w"))
    print(p["name"], p["role"])') || fail "--peers $PEERS"
    while read -r name role; do
        [[ -n $name ]] || continue
        token=$(cmctl --format json token create --role "$role" --env "$ENVIRONMENT" | jq -r .token) ||
            fail "cmctl token create --role $role --env $ENVIRONMENT (for peer $name)"
        printf '%s' "$token" | docker exec -i "$SERVER" sh -c 'umask 077; cat >"/tmp/peers/$1.token"' sh "$name"
        # shellcheck disable=SC2016 # expanded by the container's shell
        docker exec -d "$SERVER" sh -c 'CM_TOKEN=$(cat "/tmp/peers/$1.token") exec cm-agent pose \
            --state-dir "/var/lib/cm/peers/$1" --server https://localhost:8443 \
            --ca-fingerprint "$2" --name "$1" --facts "/tmp/peers/$1.yaml" >"/tmp/peers/$1.log" 2>&1' sh "$name" "$fingerprint"
        wait_until 30 is_active "$name" ||
            fail "peer $name enrolled (cm-agent pose)" "$(docker exec "$SERVER" cat "/tmp/peers/$name.log" 2>&1)"
        say "peer $name ($role) is in the cluster view"
    done <<<"$names"
}

is_active() { [[ $(cmctl --format json node show "$1" | jq -r .state) == active ]]; }

first_run_done() { [[ $(runs_json "$NODE" | jq length) -gt 0 ]]; }

# The first run's resources: what changed, what failed and why.
show_report() {
    local runs
    runs=$(runs_json "$NODE")
    say "first run: $(jq -r '.[-1] | "\(.status), \(.resources_changed) of \(.resources_total) resources changed, \(.resources_failed) failed, \(.duration_ms) ms"' <<<"$runs")"
    jq -r '.[-1].report.resources[]? |
        "  \(.type)[\(.name)] \(.action): \(if .error then "FAILED: \(.error)" elif .skipped then "skipped (\(.skipped))" elif .changed then "changed: \(.changes | join(", "))" else "up to date" end)"' <<<"$runs" >&3
    jq -r '.[-1].report.error // empty | "  run error: \(.)"' <<<"$runs" >&3
    jq -e '.[-1].status == "success"' <<<"$runs" >/dev/null
}

main() {
    parse_args "$@"
    trap cleanup EXIT
    SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/$RUN_ID.XXXXXX")
    need_tools
    build_images
    start_server
    push_repository
    set_role
    set_secrets
    local userdata=$SCRATCH/user-data fingerprint ok=1 proxy=()
    cmctl userdata --role "$ROLE" --env "$ENVIRONMENT" --server "$SERVER_URL" --cloud none --uses 1 >"$userdata" 2>"$SCRATCH/userdata.err" ||
        fail "cmctl userdata --role $ROLE --env $ENVIRONMENT" "$(cat "$SCRATCH/userdata.err")"
    fingerprint=$(sed -n 's/^ca_fingerprint: "\(.*\)"$/\1/p' "$userdata")
    [[ -n $fingerprint ]] || fail "the user-data from cmctl userdata names the CA fingerprint"
    add_peers "$fingerprint"

    NODE=$RUN_ID-node
    [[ -z $APT_PROXY ]] || proxy=(--apt-proxy "$APT_PROXY")
    say "booting $NODE (role $ROLE, environment $ENVIRONMENT, $KIND)"
    NODES+=("$NODE")
    "$HERE/run-node.sh" --kind "$KIND" --image "cm-node-$KIND:test" --network "$NETWORK" "${proxy[@]}" \
        "$NODE" "$userdata" -- --label "cm.scenario=$RUN_ID" >/dev/null || fail "$NODE: container started"
    wait_until "$TIMEOUT" first_run_done || fail "$NODE: a first run within ${TIMEOUT}s"
    show_report || ok=0
    say "checks (cm-agent check --wait $WAIT):"
    docker exec "$NODE" cm-agent check --wait "$WAIT" | sed 's/^/  /' >&3 || ok=0
    if ((ok)); then
        pass "role $ROLE: the first run succeeded and its checks pass"
    else
        fail "role $ROLE: the first run failed or a check did not pass (see above)"
    fi
    ((KEEP == 0)) || say "look around: docker exec -it $NODE bash; remove: docker rm -f \$(docker ps -aq --filter label=cm.scenario=$RUN_ID); docker network rm $NETWORK"
}

main "$@"
