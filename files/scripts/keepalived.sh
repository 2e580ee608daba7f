# Put keepalived.conf in place: validated by keepalived itself before it replaces the live file, then
# the service enabled and reloaded (a reload keeps the VRRP state; a restart would drop the VIP).
# First what the config refers to and what keeps the daemon up: the notify hook recording every VRRP
# transition (journal tag pihalb-vrrp, and /run/pihalb-vrrp-state, read by `python -m ops status`),
# and a systemd drop-in restarting a crashed keepalived (Debian's unit does not).
set -eu

# keepalived runs it as root (script_user root) with TYPE NAME STATE PRIORITY; root-owned and not
# writable by others, or keepalived's script security refuses it.
notify_script=$(
    cat <<'NOTIFY'
#!/bin/sh
# Installed by pi-ha-lb (keepalived.sh): keepalived's notify hook, called with TYPE NAME STATE PRIORITY.
# Logs the transition to the journal and keeps "STATE TIMESTAMP" (UTC) in /run/pihalb-vrrp-state.
set -u
state=${3:-UNKNOWN}
logger -t pihalb-vrrp "${1:-?} ${2:-?} entered $state state (priority ${4:-?})" || true
file=/run/pihalb-vrrp-state
tmp=$(mktemp "$file.XXXXXX") || exit 0
if printf '%s %s\n' "$state" "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" >"$tmp" && chmod 0644 "$tmp"; then
    mv -f "$tmp" "$file"
else
    rm -f "$tmp"
fi
NOTIFY
)
install_if_different "$notify_script" 0755 /usr/local/sbin/pihalb-keepalived-notify

restart_dropin="# Installed by pi-ha-lb (keepalived.sh): a crashed keepalived comes back (Debian's unit has no Restart=).
[Service]
Restart=on-failure
RestartSec=1"
changed_before=$changed
changed=no
install_if_different "$restart_dropin" 0644 /etc/systemd/system/keepalived.service.d/pihalb-restart.conf
if [ "$changed" = yes ]; then
    sudo -n systemctl daemon-reload
    echo "keepalived restart drop-in installed"
fi
if [ "$changed_before" = yes ]; then
    changed=yes
fi

conf_staged=$(mktemp)
trap 'rm -f "$conf_staged"' EXIT
printf '%s' "$CONFIG_B64" | base64 -d >"$conf_staged"
live=/etc/keepalived/keepalived.conf
if ! sudo -n cmp -s "$conf_staged" "$live"; then
    sudo -n keepalived --config-test -f "$conf_staged"
    sudo -n install -D -m 0600 -o root -g root "$conf_staged" "$live.new"
    sudo -n mv -f "$live.new" "$live"
    echo "keepalived.conf updated"
    changed=yes
    if systemctl is-active --quiet keepalived; then
        sudo -n systemctl reload keepalived
    fi
fi
ensure_running keepalived
report_changed
