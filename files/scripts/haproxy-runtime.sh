# HAProxy's runtime API on a balancer, for the rolling steps: one command per connection to the admin
# socket HAProxy listens on inside its container (127.0.0.1 only, never published).
# CONTAINER_SPEC ties the step before a replacement to the container it rolls: it runs when that changes.

# runtime COMMAND: its answer on stdout; fails when HAProxy does not answer.
runtime() {
    # shellcheck disable=SC2016 # expanded by the bash inside the container
    sudo -n docker exec "$CONTAINER" bash -c 'exec 3<>/dev/tcp/127.0.0.1/"$1" && printf "%s\n" "$2" >&3 && cat <&3' \
        _ "$RUNTIME_PORT" "$1"
}

# haproxy_running: the balancer's HAProxy container is up (on a first apply it comes after the servers).
haproxy_running() { [ "$(sudo -n docker inspect -f '{{.State.Running}}' "$CONTAINER" 2>/dev/null || true)" = true ]; }

# server_field FIELD: a column of `show stat` for this server (status, scur, ...), empty if unknown.
server_field() {
    runtime "show stat" | awk -F, -v backend="$BACKEND" -v server="$SERVER" -v field="$1" '
        NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) column[$i] = i; next }
        $1 == backend && $2 == server { print $column[field] }'
}

# wait_for WHAT SECONDS COMMAND...: until COMMAND succeeds, or fail naming WHAT.
wait_for() {
    what=$1 seconds=$2
    shift 2
    deadline=$(($(date +%s) + seconds))
    until "$@"; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "timed out after ${seconds}s waiting for $what" >&2
            exit 1
        fi
        sleep 0.2
    done
}
