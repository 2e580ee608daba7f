# Put keepalived.conf in place: validated by keepalived itself before it replaces the live file, then
# the service enabled and reloaded (a reload keeps the VRRP state; a restart would drop the VIP).
# On the BACKUP (PAUSE_FOR_PEER=yes), whose step runs first, a changed config stops keepalived instead,
# unless this host holds the VIP; the resume step starts it once the MASTER has reloaded. Reloaded one
# after the other, the two would disagree in between: a new weight makes the BACKUP outbid the MASTER
# (the VIP moves there and back), a new VRRP version makes each deaf to the other (two MASTERs). A
# stopped BACKUP sends nothing, so the MASTER reloads alone and keeps its state and the VIP.
# Except when the instance's identity changes (interface, router id, unicast or not, unicast source):
# keepalived then deletes the instance on reload, releasing the VIP, and starts a new one, which waits
# out three adverts before it is MASTER. So the BACKUP reloads in place and its new instance takes the
# VIP; the MASTER waits for that (PEER_TAKEOVER_S) before its own reload, then takes the VIP back.
# First what the config refers to and what keeps the daemon up: the notify hook recording every VRRP
# transition (journal tag $LOG_TAG, and $STATE_FILE, read by `python -m ops status`),
# and a systemd drop-in restarting a crashed keepalived (Debian's unit does not).
set -eu

# keepalived runs it as root (script_user root) with TYPE NAME STATE PRIORITY; root-owned and not
# writable by others, or keepalived's script security refuses it. @STATE_FILE@ and @LOG_TAG@ are
# replaced with this script's inputs after the here-document (which is quoted: the hook's own $ stay).
notify_script=$(
    cat <<'NOTIFY'
#!/bin/sh
# Installed by pi-ha-lb (keepalived.sh): keepalived's notify hook, called with TYPE NAME STATE PRIORITY.
# Logs the transition to the journal and keeps "STATE TIMESTAMP" (UTC) in @STATE_FILE@.
set -u
state=${3:-UNKNOWN}
logger -t @LOG_TAG@ "${1:-?} ${2:-?} entered $state state (priority ${4:-?})" || true
file=@STATE_FILE@
tmp=$(mktemp "$file.XXXXXX") || exit 0
if printf '%s %s\n' "$state" "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" >"$tmp" && chmod 0644 "$tmp"; then
    mv -f "$tmp" "$file"
else
    rm -f "$tmp"
fi
NOTIFY
)
notify_script=${notify_script//@STATE_FILE@/$STATE_FILE}
notify_script=${notify_script//@LOG_TAG@/$LOG_TAG}
install_if_different "$notify_script" 0755 "$NOTIFY"

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

holds_vip() { ip -4 -o addr show dev "$INTERFACE" | grep -q " $VIP/"; }
# What keepalived matches an instance by across a reload (vrrp_exist in keepalived's vrrp.c).
identity() { sudo -n grep -E '^[[:space:]]*(interface|virtual_router_id|unicast_src_ip)[[:space:]]' "$1" || true; }

conf_staged=$(mktemp)
trap 'rm -f "$conf_staged"' EXIT
printf '%s' "$CONFIG_B64" | base64 -d >"$conf_staged"
live=/etc/keepalived/keepalived.conf
if ! sudo -n cmp -s "$conf_staged" "$live"; then
    sudo -n keepalived --config-test -f "$conf_staged"
    renewed=no
    if sudo -n test -f "$live" && [ "$(identity "$live")" != "$(identity "$conf_staged")" ]; then
        renewed=yes
        echo "the VRRP instance's identity changes: keepalived replaces the instance"
    fi
    if systemctl is-active --quiet keepalived; then
        if [ "$PAUSE_FOR_PEER" = yes ] && [ "$renewed" = no ] && ! holds_vip; then
            sudo -n systemctl stop keepalived
            echo "keepalived stopped until the peer has reloaded (the resume step starts it)"
        elif [ "$PAUSE_FOR_PEER" = no ] && [ "$renewed" = yes ]; then
            echo "waiting ${PEER_TAKEOVER_S}s for the peer's new instance to take the VIP"
            sleep "$PEER_TAKEOVER_S"
        fi
    fi
    sudo -n install -D -m 0600 -o root -g root "$conf_staged" "$live.new"
    sudo -n mv -f "$live.new" "$live"
    echo "keepalived.conf updated"
    changed=yes
    if systemctl is-active --quiet keepalived; then
        sudo -n systemctl reload keepalived
    fi
fi
if [ "$PAUSE_FOR_PEER" = yes ]; then
    ensure_enabled keepalived
else
    ensure_running keepalived
fi
report_changed
