# After this balancer's new HAProxy container answers: its VRRP priority comes back (it takes the VIP
# back by preemption, the peer keeping it until then). Nothing to do before keepalived runs here.
# Only onto a healthy HAProxy: a container whose create failed its health wait stays in the state as
# done (pulumi-docker's init error; the next up is an empty update), and the paper's `killall -0`
# check would let this balancer take the VIP back onto an HAProxy that answers nothing. Bounded: the
# step fails, naming the container, and the peer keeps the VIP.
set -eu
haproxy_healthy() {
    [ "$(sudo -n docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$CONTAINER" 2>/dev/null || true)" = healthy ]
}
wait_for "$CONTAINER healthy on this balancer (docker inspect $CONTAINER; its logs: docker logs $CONTAINER)" \
    "$HEALTHY_TIMEOUT_S" haproxy_healthy
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
