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
# and a systemd drop-in that restarts a crashed keepalived (Debian's unit does not) and, after every start,
# runs the real-time hook: keepalived in SCHED_RR at $RT_PRIORITY, so a busy host does not delay its adverts.
# Not keepalived's own `vrrp_rt_priority`: on every reload keepalived 2.2.7 (and its master branch) resets the
# VRRP process's RLIMIT_RTTIME to a struct it never filled in, {0, 0} (lib/process.c, orig_rlimit_rt), and
# without CAP_SYS_RESOURCE it cannot raise it again: the kernel then kills the real-time process at its first
# tick. keepalived leaves a scheduling policy it did not set alone, so the hook's survives reloads.
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

# The real-time hook, run by systemd with keepalived's main PID. The main process gets SCHED_RR without
# reset-on-fork, so a VRRP process it starts again after a crash is real-time too; the VRRP process gets it
# with reset-on-fork, so the notify hooks it runs are ordinary processes. RLIMIT_RTTIME first (lowering a
# limit needs no privilege): a real-time process spinning for RTTIME_US without sleeping is killed (keepalived
# then starts its VRRP process again) instead of starving the host. A refusal leaves keepalived niced.
realtime_script=$(
    cat <<'REALTIME'
#!/bin/sh
# Installed by pi-ha-lb (keepalived.sh): keepalived in SCHED_RR @RT_PRIORITY@, run after every start.
set -u
main=${1:?keepalived main PID}
vrrp=$(pgrep -P "$main" -x keepalived || true)
if prlimit --pid "$main" --rttime=@RTTIME_US@ && chrt --rr --pid @RT_PRIORITY@ "$main"; then
    for pid in $vrrp; do
        prlimit --pid "$pid" --rttime=@RTTIME_US@ && chrt --rr --reset-on-fork --pid @RT_PRIORITY@ "$pid"
    done
    logger -t @LOG_TAG@ "keepalived $main and its VRRP process $vrrp real-time (SCHED_RR @RT_PRIORITY@)"
else
    logger -t @LOG_TAG@ "real-time scheduling refused: keepalived stays niced"
fi
REALTIME
)
realtime_script=${realtime_script//@RT_PRIORITY@/$RT_PRIORITY}
realtime_script=${realtime_script//@RTTIME_US@/$RTTIME_US}
realtime_script=${realtime_script//@LOG_TAG@/$LOG_TAG}
install_if_different "$realtime_script" 0755 "$REALTIME"

dropin="# Installed by pi-ha-lb (keepalived.sh): a crashed keepalived comes back (Debian's unit has no Restart=),
# real-time after every start (its failure is only logged).
[Service]
Restart=on-failure
RestartSec=1
ExecStartPost=-$REALTIME \$MAINPID"
changed_before=$changed
changed=no
install_if_different "$dropin" 0644 "$DROPIN"
old_dropin=/etc/systemd/system/keepalived.service.d/pihalb-restart.conf  # its name until 2026-12
if [ -e "$old_dropin" ]; then
    sudo -n rm -f "$old_dropin"
    changed=yes
fi
if [ "$changed" = yes ]; then
    sudo -n systemctl daemon-reload
    echo "keepalived drop-in installed"
    main=$(systemctl show --property MainPID --value keepalived)
    if [ "$main" != 0 ]; then
        sudo -n "$REALTIME" "$main"  # the running keepalived too, without a restart (which would drop the VIP)
    fi
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
