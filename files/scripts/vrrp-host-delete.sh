# Undo vrrp-host.sh's firewall unit and rules (packages and the sysctl drop-in stay: harmless, shared).
set -eu
sudo -n systemctl disable pihalb-vrrp-firewall 2>/dev/null || true
sudo -n rm -f /etc/systemd/system/pihalb-vrrp-firewall.service /usr/local/sbin/pihalb-vrrp-firewall
sudo -n systemctl daemon-reload
while sudo -n iptables -D INPUT -i "$INTERFACE" -p vrrp -j ACCEPT 2>/dev/null; do :; done
while sudo -n iptables -D INPUT -i "$INTERFACE" -d 224.0.0.0/8 -j ACCEPT 2>/dev/null; do :; done
