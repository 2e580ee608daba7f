# Undo tls-host.sh: the keys, the keeper and HAProxy's PEM leave the balancer.
set -eu
sudo -n rm -rf "$TLS_DIR" "$PEM_DIR" "$LIB_DIR"
sudo -n rm -f "$KEEPER"
