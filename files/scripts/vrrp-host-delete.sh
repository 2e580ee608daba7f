# Undo vrrp-host.sh: the firewall unit, its rules (the handoff chain too) and the sysctl drop-in (packages
# stay: shared; the live ip_forward value stays until the next boot, as other services may rely on it by then).
set -eu
sudo -n systemctl disable pihalb-vrrp-firewall 2>/dev/null || true
sudo -n rm -f /etc/systemd/system/pihalb-vrrp-firewall.service /usr/local/sbin/pihalb-vrrp-firewall \
    /etc/sysctl.d/60-pihalb-vrrp.conf
sudo -n systemctl daemon-reload
while sudo -n iptables -D INPUT -i "$INTERFACE" -p vrrp -j ACCEPT 2>/dev/null; do :; done
while sudo -n iptables -D INPUT -i "$INTERFACE" -d 224.0.0.0/8 -j ACCEPT 2>/dev/null; do :; done
while sudo -n iptables -t mangle -D PREROUTING -i "$INTERFACE" -j "$HANDOFF_CHAIN" 2>/dev/null; do :; done
if sudo -n iptables -t mangle -F "$HANDOFF_CHAIN" 2>/dev/null; then
    sudo -n iptables -t mangle -X "$HANDOFF_CHAIN"
fi
