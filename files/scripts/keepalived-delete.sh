# Undo keepalived.sh: stop VRRP on this host (the VIP moves to the peer) and remove the config.
set -eu
sudo -n systemctl disable --now keepalived 2>/dev/null || true
sudo -n rm -f /etc/keepalived/keepalived.conf
