# After the MASTER's keepalived step: the BACKUP's keepalived, stopped by its own step while the MASTER
# reloaded, runs again with the config already in place. On every up, so that an apply that failed in
# between (the MASTER's step) leaves no BACKUP stopped once the next one has run.
set -eu
if sudo -n test -s /etc/keepalived/keepalived.conf; then
    ensure_running keepalived
fi
report_changed
