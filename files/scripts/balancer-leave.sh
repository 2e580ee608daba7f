# Before this balancer's HAProxy container is replaced: its VRRP priority drops to the floor (the
# handover track file), so the peer, already rolled, takes the VIP. This host keeps the VIP until the
# peer's adverts win (Master_Down_Interval), so there is no moment without a holder; only then does
# this HAProxy stop. keepalived keeps running: a stopped keepalived drops the VIP at once and leaves
# nobody holding it for the peer's skew time.
set -eu
echo "container spec $CONTAINER_SPEC"
vip_gone() { ! ip -4 -o addr show dev "$INTERFACE" | grep -q " $VIP/"; }
running_spec=$(sudo -n docker inspect -f "{{ index .Config.Labels \"$SPEC_LABEL\" }}" "$CONTAINER" 2>/dev/null || true)
if [ "$running_spec" = "$CONTAINER_SPEC" ]; then
    echo "the running HAProxy container already has this spec: it stays, nothing to hand over"
elif systemctl is-active --quiet keepalived; then
    if [ "$PREEMPT" = yes ] && sudo -n grep -qF "$HANDOVER_FILE" /etc/keepalived/keepalived.conf; then
        if [ "$(sudo -n cat "$HANDOVER_FILE" 2>/dev/null || true)" != 1 ]; then
            echo 1 | sudo -n tee "$HANDOVER_FILE" >/dev/null # in place: keepalived watches the file
            echo "VRRP priority lowered: the peer takes the VIP"
            changed=yes
        fi
        wait_for "the peer to take the VIP" "$HANDOVER_TIMEOUT_S" vip_gone
        sleep 1 # the peer's gratuitous ARP lands while this HAProxy still answers what reaches it
    else
        # Without preemption a peer never outbids a MASTER, and a keepalived.conf from before the handover
        # file does not track it: stopping keepalived is the way left (it sends a priority-0 advert).
        sudo -n systemctl stop keepalived
        echo "keepalived stopped: the peer takes the VIP"
        changed=yes
        wait_for "the VIP to leave this host" 10 vip_gone
    fi
fi
report_changed
