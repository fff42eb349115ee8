#!/bin/bash
# Boot script of the cm-node-sysv image: a Debian node with no init daemon.
#
# tini is PID 1 (it reaps the daemons that user-data and packages start,
# which get reparented to it) and runs this script, which on every start
#   1. clears /run, as a reboot would (stale pid files from the previous run
#      would make start-stop-daemon think a service is still running),
#   2. starts the services enabled in runlevel 2 (/etc/rc2.d/S*), so a
#      restarted container comes back like a rebooted machine,
#   3. runs cloud-init's four stages in order. cloud-init keeps its own
#      per-instance state in /var/lib/cloud, so user-data runs once per
#      instance-id, not once per start,
#   4. waits; on SIGTERM/SIGINT (docker stop) it stops the runlevel-2
#      services in reverse order and exits 0.
# Given arguments (`docker run IMAGE CMD...`), it runs CMD instead.
#
# The NoCloud seed (meta-data with instance-id, user-data) is expected in
# /var/lib/cloud/seed/nocloud: bind-mount a directory there, or `docker cp`
# one in between `docker create` and `docker start`. Without a seed the None
# datasource runs and there is no user-data.
#
# cloud-init's own output goes to stdout (the container's console, see
# `docker logs`) and, through the `output:` setting of Debian's
# 05_logging.cfg, to /var/log/cloud-init-output.log.
set -uo pipefail # no -e: a failing stage must not stop the node booting

readonly SEED_DIR=/var/lib/cloud/seed/nocloud

log() { echo "cm-node: $*"; }

# Runlevel-2 start scripts, minus cloud-init's own (run as stages below).
rc2_scripts() {
    local s
    for s in /etc/rc2.d/S[0-9][0-9]*; do
        [[ -x $s ]] || continue
        case ${s##*/S[0-9][0-9]} in cloud-*) continue ;; esac
        echo "$s"
    done
}

clean_run() {
    # Only when /run is the container's own directory: a tmpfs mounted by
    # `docker run --tmpfs /run` is already empty. -xdev keeps find out of
    # anything mounted below /run.
    if ! mountpoint -q /run; then
        find /run -xdev -mindepth 1 -delete 2>/dev/null || true
    fi
    mkdir -p /run/lock
    chmod 1777 /run/lock
}

start_services() {
    local s
    for s in $(rc2_scripts); do
        "$s" start || log "WARNING: $s start failed"
    done
}

stop_services() {
    local s
    for s in $(rc2_scripts | tac); do
        "$s" stop || log "WARNING: $s stop failed"
    done
}

run_cloud_init() {
    local stage rc failed=0
    if [[ ! -s $SEED_DIR/meta-data ]]; then
        log "no NoCloud seed in $SEED_DIR: cloud-init falls back to the None datasource"
    fi
    # Each stage as its own command, as cloud-init's init scripts and
    # systemd units do; one failing stage does not skip the later ones.
    for stage in "init --local" "init" "modules --mode=config" "modules --mode=final"; do
        # shellcheck disable=SC2086 # the stage is deliberately split
        cloud-init $stage
        rc=$?
        if ((rc != 0)); then
            log "WARNING: 'cloud-init $stage' exited $rc"
            failed=1
        fi
    done
    return $failed
}

shutdown() {
    log "stopping"
    stop_services
    log "stopped"
    exit 0
}

main() {
    # `docker run IMAGE CMD...` runs CMD instead of booting the node (handy
    # for `cm-agent --version` and the like).
    if (($#)); then
        exec "$@"
    fi
    trap shutdown TERM INT
    log "booting ($(hostname))"
    clean_run
    start_services
    if run_cloud_init; then
        log "cloud-init finished"
    else
        log "cloud-init finished with errors (see /var/log/cloud-init.log)"
    fi
    log "up"
    # sleep in the background so the trap runs as soon as a signal arrives.
    sleep infinity &
    wait $!
}

main "$@"
