# After this balancer's new HAProxy container answers: keepalived runs again (it may take the VIP back,
# by preemption). Nothing to do before keepalived is configured (a first apply configures it later).
set -eu
echo "container spec: $CONTAINER_SPEC"
if [ -f /etc/keepalived/keepalived.conf ] && ! systemctl is-active --quiet keepalived; then
    sudo -n systemctl start keepalived
    echo "keepalived started"
    changed=yes
fi
report_changed
