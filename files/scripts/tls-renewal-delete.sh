# Undo tls-renewal.sh.
set -eu
sudo -n systemctl disable --now "$UNIT.timer" 2>/dev/null || true
sudo -n rm -f "/etc/systemd/system/$UNIT.service" "/etc/systemd/system/$UNIT.timer"
sudo -n systemctl daemon-reload
