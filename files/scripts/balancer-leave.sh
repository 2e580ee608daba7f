# Before this balancer's HAProxy container is replaced: keepalived stops here, so the peer (already
# rolled) holds the VIP before this HAProxy stops. A stopped keepalived sends a priority-0 advert,
# so the peer takes over at once. Nothing to do before HAProxy or keepalived exist.
set -eu
echo "container spec: $CONTAINER_SPEC"
if [ "$(sudo -n docker inspect -f '{{.State.Running}}' "$CONTAINER" 2>/dev/null || true)" = true ] \
    && systemctl is-active --quiet keepalived; then
    sudo -n systemctl stop keepalived
    echo "keepalived stopped: the VIP is the peer's while HAProxy is replaced"
    changed=yes
fi
vip_gone() { ! ip -4 -o addr show dev "$INTERFACE" | grep -q " $VIP/"; }
wait_for "the VIP to leave this host" 10 vip_gone
sleep 1 # the peer's gratuitous ARP lands while this HAProxy still answers its connections
report_changed
