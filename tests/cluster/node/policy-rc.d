#!/bin/sh
# /usr/sbin/policy-rc.d of the cm-node-sysv image.
#
# The image has no /sbin/init, so invoke-rc.d (what package maintainer
# scripts call) would refuse to start anything ("No init system and
# policy-rc.d missing! Defaulting to block"). This policy gives it the
# decision a sysvinit machine in runlevel 2 makes: start/restart only what
# has a start link in /etc/rc2.d or /etc/rcS.d; every other action is fine.
# Interface: policy-rc.d [--quiet] [--list] <initscript-id> <actions> [<runlevel>]
# (see /usr/share/doc/init-system-helpers/README.policy-rc.d.gz).
while [ $# -gt 0 ]; do
    case $1 in
        --list) exit 0 ;;
        --*) shift ;;
        *) break ;;
    esac
done
id=${1:-}
actions=${2:-}
enabled() {
    for link in /etc/rc2.d/S[0-9][0-9]"$id" /etc/rcS.d/S[0-9][0-9]"$id"; do
        [ -e "$link" ] && return 0
    done
    return 1
}
for action in $actions; do
    # invoke-rc.d writes "(start)" when its own check says "not enabled";
    # without a runlevel to look at it always says so, hence our own check.
    action=${action#\(}
    action=${action%\)}
    case $action in
        start | restart | try-restart)
            enabled || exit 101
            ;;
    esac
done
exit 0
