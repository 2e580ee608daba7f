# Undo haproxy-watch.sh.
set -eu
sudo -n systemctl disable --now pihalb-haproxy-watch 2>/dev/null || true
sudo -n rm -f /etc/systemd/system/pihalb-haproxy-watch.service /usr/local/sbin/pihalb-haproxy-watch \
    /etc/tmpfiles.d/pihalb.conf
sudo -n systemctl daemon-reload
