# Undo haproxy-watch.sh.
set -eu
sudo -n systemctl disable --now "$UNIT" 2>/dev/null || true
sudo -n rm -f "/etc/systemd/system/$UNIT.service" "/usr/local/sbin/$UNIT" "$EXIT_WAITER_PATH" \
    /etc/tmpfiles.d/pihalb.conf
sudo -n systemctl daemon-reload
