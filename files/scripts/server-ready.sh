# After SERVER's new container answers: this balancer sends it requests again, once its health check
# says UP (bounded), so the next server is only taken out when this one carries traffic.
set -eu
if haproxy_running && [ -n "$(server_field status)" ]; then
    if [ "$(server_field status)" = MAINT ]; then
        runtime "set server $BACKEND/$SERVER state ready" >/dev/null
        echo "$SERVER back in service on this balancer"
        changed=yes
    fi
    server_up() { [ "$(server_field status)" = UP ]; }
    wait_for "$SERVER UP on this balancer" "$READY_TIMEOUT_S" server_up
fi
report_changed
