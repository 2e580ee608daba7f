# The certificate's renewal on a balancer (issue 19): a systemd timer runs the keeper every few minutes,
# which renews when due (the VIP holder first), adopts a newer certificate from the peer, and puts it live
# without a reload. Nothing secret here: the keeper reads the keys from root's files.
set -eu
service="[Unit]
Description=pi-ha-lb: keep HAProxy's certificate valid (renew, adopt the peer's, install hitlessly)
After=docker.service network-online.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart=$KEEPER renew
TimeoutStartSec=900"
timer="[Unit]
Description=pi-ha-lb: certificate renewal check

[Timer]
OnBootSec=2min
OnUnitActiveSec=${INTERVAL_MIN}min
RandomizedDelaySec=${RANDOM_DELAY_S}s

[Install]
WantedBy=timers.target"
install_if_different "$service" 0644 "/etc/systemd/system/$UNIT.service"
install_if_different "$timer" 0644 "/etc/systemd/system/$UNIT.timer"
if [ "$changed" = yes ]; then
    sudo -n systemctl daemon-reload
fi
ensure_running "$UNIT.timer"
if [ "$changed" = yes ]; then
    # A first run now, not at the timer's leisure: this step comes after the balancer is back in service
    # with its TLS config, so HAProxy answers the challenges. The VIP holder orders the certificate; the
    # other balancer waits (bounded) for it and adopts it, so both serve it when the deployment ends. A
    # failure (the ACME server unreachable) leaves HAProxy serving what it served (the first-start
    # certificate on a new cluster) and the deployment going; the timer tries again.
    sudo -n "$KEEPER" settle ||
        echo "pihalb: no certificate from the ACME server yet; the renewal timer tries again (journalctl -u $UNIT)" >&2
fi
report_changed
