# Undo tls-host.sh: the keys, the keeper and HAProxy's PEM leave the balancer (and /etc/pihalb once nothing
# else is in it: the config step's delete, which runs first, left it for the TLS directory).
set -eu
sudo -n rm -rf "$TLS_DIR" "$PEM_DIR" "$LIB_DIR"
sudo -n rm -f "$KEEPER"
sudo -n rmdir --ignore-fail-on-non-empty /etc/pihalb 2>/dev/null || true
