# Put keepalived.conf in place: validated by keepalived itself before it replaces the live file, then
# the service enabled and reloaded (a reload keeps the VRRP state; a restart would drop the VIP).
set -eu
staged=$(mktemp)
trap 'rm -f "$staged"' EXIT
printf '%s' "$CONFIG_B64" | base64 -d >"$staged"
live=/etc/keepalived/keepalived.conf
if ! sudo -n cmp -s "$staged" "$live"; then
    sudo -n keepalived --config-test -f "$staged"
    sudo -n install -D -m 0600 -o root -g root "$staged" "$live.new"
    sudo -n mv -f "$live.new" "$live"
    echo "keepalived.conf updated"
    changed=yes
    if systemctl is-active --quiet keepalived; then
        sudo -n systemctl reload keepalived
    fi
fi
ensure_running keepalived
report_changed
