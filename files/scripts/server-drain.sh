# Before SERVER's container is replaced: this balancer stops sending it requests (maintenance) and
# waits, bounded, for the ones in flight to finish. Nothing to do before HAProxy or the server exist.
set -eu
echo "container spec $CONTAINER_SPEC"
if haproxy_running && [ -n "$(server_field status)" ]; then
    if [ "$(server_field status)" != MAINT ]; then
        runtime "set server $BACKEND/$SERVER state maint" >/dev/null
        echo "$SERVER in maintenance on this balancer"
        changed=yes
    fi
    no_sessions() { [ "$(server_field scur)" = 0 ]; }
    wait_for "$SERVER's requests in flight to finish" "$DRAIN_TIMEOUT_S" no_sessions
fi
report_changed
