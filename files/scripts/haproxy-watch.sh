# Event-driven HAProxy tracking for keepalived (vrrp.track.kind: events): a small service follows
# Docker's events for the HAProxy container and writes 1 (answering: Docker's health check passes) or 0
# (going, gone or not answering) to a track file the moment its health changes, it is signalled to stop,
# or it dies; keepalived sees the change through inotify, without polling. Reload signals (USR2, HUP) are
# not stops. Not 1 on `start`: a balancer that just booted would take the VIP back before its HAProxy
# answers (the lab's rolling-reboot test lost ~30 requests that way with 0.08 s adverts).
set -eu

watcher="#!/bin/sh
# Installed by pi-ha-lb: keep $TRACK_FILE at 1 while container $CONTAINER runs healthy, 0 otherwise.
set -u
mkdir -p \"\$(dirname $TRACK_FILE)\"
# The journal line after the write: when the track file changed, for status and the takeover bench.
report() { echo \"\$1\" > $TRACK_FILE && echo \"track file \$1 (\$2)\"; }
current() {
    state=\$(docker inspect -f '{{.State.Running}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' $CONTAINER 2>/dev/null)
    [ \"\$state\" = 'true healthy' ] && echo 1 || echo 0
}
# The fast path: a waiter per HAProxy start that the kernel wakes the moment HAProxy stops listening
# ($EXIT_WAITER_PATH, pidfds). Docker's die event below stays as the safety net (it comes ~50 ms later).
arm() {
    pid=\$(docker inspect -f '{{.State.Pid}}' $CONTAINER 2>/dev/null || echo 0)
    # In a subshell, so that an exited waiter is reaped by init, not left a zombie of this shell.
    if [ \"\${pid:-0}\" -gt 0 ]; then ($EXIT_WAITER_PATH \"\$pid\" $TRACK_FILE &); fi
}
follow_starts() {
    while true; do
        since=\$(date +%s.%N)
        arm
        docker events --since \"\$since\" --filter type=container --filter container=$CONTAINER \\
            --filter event=start --format start | while read -r _; do arm; done
        sleep 1
    done
}
follow_starts &
while true; do
    report \"\$(current)\" inspect
    docker events --filter type=container --filter container=$CONTAINER --filter event=health_status \\
        --filter event=kill --filter event=die --format '{{.Action}} {{index .Actor.Attributes \"signal\"}}' |
        while read -r action signal; do
            case \$action:\$signal in
                health_status::healthy) report 1 healthy ;;
                health_status::unhealthy) report 0 unhealthy ;;
                kill:1 | kill:12) ;;
                kill:* | die:*) report 0 \"\$action \$signal\" ;;
            esac
        done
    sleep 1
done"
install_if_different "$watcher" 0755 "/usr/local/sbin/$UNIT"
install_if_different "$(printf '%s' "$EXIT_WAITER_B64" | base64 -d)" 0755 "$EXIT_WAITER_PATH"
# /run is empty after a boot: without the directory keepalived drops the track file for good.
track_dir=$(dirname "$TRACK_FILE")
install_if_different "d $track_dir 0755 root root -" 0644 /etc/tmpfiles.d/pihalb.conf
if [ ! -d "$track_dir" ]; then
    sudo -n systemd-tmpfiles --create /etc/tmpfiles.d/pihalb.conf
    changed=yes
fi
unit="[Unit]
Description=pi-ha-lb: HAProxy container state for keepalived's track file
After=docker.service
Requires=docker.service
Before=keepalived.service

[Service]
ExecStart=/usr/local/sbin/$UNIT
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target"
install_if_different "$unit" 0644 "/etc/systemd/system/$UNIT.service"
if [ "$changed" = yes ]; then
    sudo -n systemctl daemon-reload
    sudo -n systemctl restart "$UNIT"
fi
ensure_running "$UNIT"
# keepalived reads the track file when it (re)loads, and a missing file counts as 0: FAULT with weight 0.
# keepalived's step comes after this one, so this one ends once the watcher has written the file.
tenths=0
until [ -s "$TRACK_FILE" ]; do
    if [ "$tenths" -ge 300 ]; then
        echo "$UNIT wrote no $TRACK_FILE in 30 s" >&2
        exit 1
    fi
    sleep 0.1
    tenths=$((tenths + 1))
done
report_changed
