# What VRRP needs on a balancer host, kept across reboots: IP forwarding via a sysctl.d drop-in, and
# iptables rules accepting VRRP (protocol 112) and multicast, re-applied at boot by a systemd unit.
# Rules are added only when absent, so a second run changes nothing.
set -eu

install_if_different "net.ipv4.ip_forward = 1" 0644 /etc/sysctl.d/60-pihalb-vrrp.conf
if [ "$(cat /proc/sys/net/ipv4/ip_forward)" != 1 ]; then
    sudo -n sysctl -q -w net.ipv4.ip_forward=1
    changed=yes
fi

ensure_packages iptables keepalived psmisc procps

rules="#!/bin/sh
# Installed by pi-ha-lb: accept VRRP and multicast on $INTERFACE (added only when absent).
set -eu
accept() { iptables -C INPUT \"\$@\" -j ACCEPT 2>/dev/null || iptables -I INPUT \"\$@\" -j ACCEPT; }
accept -i $INTERFACE -d 224.0.0.0/8
accept -i $INTERFACE -p vrrp"
install_if_different "$rules" 0755 /usr/local/sbin/pihalb-vrrp-firewall
unit="[Unit]
Description=pi-ha-lb: accept VRRP and multicast
Before=keepalived.service
After=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/pihalb-vrrp-firewall

[Install]
WantedBy=multi-user.target"
install_if_different "$unit" 0644 /etc/systemd/system/pihalb-vrrp-firewall.service
if [ "$changed" = yes ]; then
    sudo -n systemctl daemon-reload
fi
ensure_running pihalb-vrrp-firewall
if ! sudo -n iptables -C INPUT -i "$INTERFACE" -p vrrp -j ACCEPT 2>/dev/null \
    || ! sudo -n iptables -C INPUT -i "$INTERFACE" -d 224.0.0.0/8 -j ACCEPT 2>/dev/null; then
    sudo -n /usr/local/sbin/pihalb-vrrp-firewall
    changed=yes
fi
report_changed
