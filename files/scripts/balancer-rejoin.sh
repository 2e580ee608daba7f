# After this balancer's new HAProxy container answers: its VRRP priority comes back (it takes the VIP
# back by preemption, the peer keeping it until then). Nothing to do before keepalived runs here.
set -eu
if [ "$(sudo -n cat "$HANDOVER_FILE" 2>/dev/null || echo 0)" != 0 ]; then
    echo 0 | sudo -n tee "$HANDOVER_FILE" >/dev/null # in place: keepalived watches the file
    echo "VRRP priority restored"
    changed=yes
fi
if [ -f /etc/keepalived/keepalived.conf ] && ! systemctl is-active --quiet keepalived; then
    sudo -n systemctl start keepalived # stopped by a leave without preemption
    echo "keepalived started"
    changed=yes
fi
report_changed
