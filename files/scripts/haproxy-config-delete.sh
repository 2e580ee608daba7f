# Undo haproxy-config.sh: the config directory goes once the balancer is removed from the stack.
set -eu
sudo -n rm -rf "$CONFIG_DIR"
