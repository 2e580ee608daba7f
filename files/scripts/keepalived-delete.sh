# Undo keepalived.sh: stop VRRP on this host (the VIP moves to the peer), then remove the config, the
# notify hook, its state file, the real-time hook and the drop-in.
set -eu
sudo -n systemctl disable --now keepalived 2>/dev/null || true
sudo -n rm -f /etc/keepalived/keepalived.conf "$NOTIFY" "$STATE_FILE" "$REALTIME"
dropin=$DROPIN
if [ -e "$dropin" ]; then
    sudo -n rm -f "$dropin"
    sudo -n rmdir --ignore-fail-on-non-empty "$(dirname "$dropin")"
    sudo -n systemctl daemon-reload
fi
