# Put the server's page in place: the nginx container serves this directory read-only, so a new page
# is a file swapped atomically on the host, never a new container.
set -eu
staged=$(mktemp)
trap 'rm -f "$staged"' EXIT
printf '%s' "$PAGE_B64" | base64 -d >"$staged"
live="$PAGE_DIR/index.html"
if ! sudo -n cmp -s "$staged" "$live"; then
    sudo -n install -d -m 0755 -o root -g root "$PAGE_DIR"
    sudo -n install -m 0644 -o root -g root "$staged" "$live.new"
    sudo -n mv -f "$live.new" "$live"
    echo "page updated"
    changed=yes
fi
report_changed
