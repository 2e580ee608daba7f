# Event-driven HAProxy tracking for keepalived (vrrp.track.kind: events): a small service follows
# Docker's events for the HAProxy container and writes 1 (running) or 0 (going or gone) to a track file
# the moment it starts, is signalled to stop, or dies; keepalived sees the change through inotify,
# without polling. Reload signals (USR2, HUP) are not stops.
set -eu

watcher="#!/bin/sh
# Installed by pi-ha-lb: keep $TRACK_FILE at 1 while container $CONTAINER runs, 0 otherwise.
set -u
mkdir -p \"\$(dirname $TRACK_FILE)\"
# The journal line after the write: when the track file changed, for status and the takeover bench.
report() { echo \"\$1\" > $TRACK_FILE && echo \"track file \$1 (\$2)\"; }
current() { [ \"\$(docker inspect -f '{{.State.Running}}' $CONTAINER 2>/dev/null)\" = true ] && echo 1 || echo 0; }
while true; do
    report \"\$(current)\" inspect
    docker events --filter type=container --filter container=$CONTAINER --filter event=start \\
        --filter event=kill --filter event=die --format '{{.Action}} {{index .Actor.Attributes \"signal\"}}' |
        while read -r action signal; do
            case \$action:\$signal in
                start:*) report 1 start ;;
                kill:1 | kill:12) ;;
                kill:* | die:*) report 0 \"\$action \$signal\" ;;
            esac
        done
    sleep 1
done"
install_if_different "$watcher" 0755 /usr/local/sbin/pihalb-haproxy-watch
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
ExecStart=/usr/local/sbin/pihalb-haproxy-watch
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target"
install_if_different "$unit" 0644 /etc/systemd/system/pihalb-haproxy-watch.service
if [ "$changed" = yes ]; then
    sudo -n systemctl daemon-reload
    sudo -n systemctl restart pihalb-haproxy-watch
fi
ensure_running pihalb-haproxy-watch
report_changed
