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
# containerd reports the exit of the container's first process about 30 ms before Docker's die event
# (dockerd tears the container down first): at 100 requests/s that is three refused requests less.
# Its exit event names the task by the container's id; a health check's exec has an id of its own.
follow_exits() {
    while true; do
        id=\$(docker inspect -f '{{.Id}}' $CONTAINER 2>/dev/null || true)
        ctr --namespace moby events 2>/dev/null | while read -r _ _ _ _ _ topic event; do
            case \$topic in
                /tasks/start) id=\$(docker inspect -f '{{.Id}}' $CONTAINER 2>/dev/null || true) ;;
                /tasks/exit)
                    case \$event in *\\\"id\\\":\\\"\$id\\\"*)
                        # The exit's own time on the journal line: when HAProxy died, for the takeover bench.
                        at=\${event##*exited_at\\\":\\\"} && [ -n \"\$id\" ] && report 0 \"exit, exited_at \${at%%\\\"*}\" ;;
                    esac ;;
            esac
        done
        sleep 1
    done
}
follow_exits &
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
report_changed
