# Put haproxy.cfg in place on a balancer: checked by the very HAProxy binary that will run it, swapped in
# atomically, and the running HAProxy reloaded without dropping connections (master-worker, SIGUSR2).
set -eu
staged=$(mktemp)
trap 'rm -f "$staged"' EXIT
printf '%s' "$CONFIG_B64" | base64 -d >"$staged"
live="$CONFIG_DIR/haproxy.cfg"
if ! sudo -n cmp -s "$staged" "$live"; then
    # shellcheck disable=SC2024 # the staged file is the login user's; only docker needs root
    sudo -n docker run --rm -i --network none --entrypoint haproxy "$IMAGE" -c -f /dev/stdin <"$staged"
    sudo -n install -d -m 0750 -o root -g "$HAPROXY_GID" "$CONFIG_DIR"
    sudo -n install -m 0640 -o root -g "$HAPROXY_GID" "$staged" "$live.new"
    sudo -n mv -f "$live.new" "$live"
    echo "haproxy.cfg updated"
    changed=yes
    if [ "$(sudo -n docker inspect -f '{{.State.Running}}' "$CONTAINER" 2>/dev/null || true)" = true ]; then
        sudo -n docker kill -s USR2 "$CONTAINER" >/dev/null
        echo "$CONTAINER reloaded"
    fi
fi
report_changed
