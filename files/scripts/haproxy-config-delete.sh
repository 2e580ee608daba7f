# Undo haproxy-config.sh: the config directory goes once the balancer is removed from the stack (and
# /etc/pihalb once nothing else is in it).
set -eu
sudo -n rm -rf "$CONFIG_DIR"
sudo -n rmdir --ignore-fail-on-non-empty /etc/pihalb 2>/dev/null || true
