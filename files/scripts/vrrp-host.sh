# What VRRP needs on a balancer host, kept across reboots: IP forwarding via a sysctl.d drop-in, and
# iptables rules accepting VRRP (protocol 112) and multicast, re-applied at boot by a systemd unit.
# Rules are added only when absent, so a second run changes nothing.
# Also the connection handoff (mangle chain $HANDOFF_CHAIN): when the VIP moves while connections are open
# (a planned handover, the MASTER taking it back), the new holder receives their next packets, knows nothing
# of them and would reset them. Instead, while the peer is alive (a VRRP packet from it within the last
# $PEER_ALIVE_S s: xt_recent list $PEER_LIST, one entry, as --mask 0.0.0.0 folds every address), a packet
# to the VIP that is not a SYN and is new to conntrack is copied to the peer (TEE; the copy's TTL is
# lowered, so a packet nobody knows dies out) and dropped here. The peer's conntrack still maps the
# connection to its HAProxy, which answers the client itself. A silent peer (powered off) gets nothing:
# those packets are reset here as before, so clients fail fast.
set -eu

install_if_different "net.ipv4.ip_forward = 1" 0644 /etc/sysctl.d/60-pihalb-vrrp.conf
if [ "$(cat /proc/sys/net/ipv4/ip_forward)" != 1 ]; then
    sudo -n sysctl -q -w net.ipv4.ip_forward=1
    changed=yes
fi

ensure_packages iptables keepalived psmisc procps

rules="#!/bin/sh
# Installed by pi-ha-lb: accept VRRP and multicast on $INTERFACE (added only when absent), and hand packets
# of connections the peer ($PEER) holds to it (vrrp-host.sh says why; the chain is rebuilt in one commit).
set -eu
accept() { iptables -C INPUT \"\$@\" -j ACCEPT 2>/dev/null || iptables -I INPUT \"\$@\" -j ACCEPT; }
accept -i $INTERFACE -d 224.0.0.0/8
accept -i $INTERFACE -p vrrp
iptables-restore --noflush <<RULES
*mangle
:$HANDOFF_CHAIN - [0:0]
-A $HANDOFF_CHAIN -s $PEER/32 -p vrrp -m recent --name $PEER_LIST --mask 0.0.0.0 --set -j RETURN
-A $HANDOFF_CHAIN ! -d $VIP/32 -j RETURN
-A $HANDOFF_CHAIN ! -p tcp -j RETURN
-A $HANDOFF_CHAIN -p tcp --syn -j RETURN
-A $HANDOFF_CHAIN -m conntrack ! --ctstate NEW -j RETURN
-A $HANDOFF_CHAIN -m addrtype ! --dst-type LOCAL -j RETURN
-A $HANDOFF_CHAIN -m recent --name $PEER_LIST --mask 0.0.0.0 ! --rcheck --seconds $PEER_ALIVE_S -j RETURN
-A $HANDOFF_CHAIN -j TEE --gateway $PEER
-A $HANDOFF_CHAIN -j DROP
COMMIT
RULES
iptables -t mangle -C PREROUTING -i $INTERFACE -j $HANDOFF_CHAIN 2>/dev/null \\
    || iptables -t mangle -A PREROUTING -i $INTERFACE -j $HANDOFF_CHAIN"
changed_before=$changed
changed=no
install_if_different "$rules" 0755 /usr/local/sbin/pihalb-vrrp-firewall
firewall_changed=$changed
if [ "$changed_before" = yes ]; then
    changed=yes
fi
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
if [ "$firewall_changed" = yes ] \
    || ! sudo -n iptables -C INPUT -i "$INTERFACE" -p vrrp -j ACCEPT 2>/dev/null \
    || ! sudo -n iptables -C INPUT -i "$INTERFACE" -d 224.0.0.0/8 -j ACCEPT 2>/dev/null \
    || ! sudo -n iptables -t mangle -C PREROUTING -i "$INTERFACE" -j "$HANDOFF_CHAIN" 2>/dev/null; then
    sudo -n /usr/local/sbin/pihalb-vrrp-firewall
    changed=yes
fi
report_changed
