# Undo nginx-page.sh: the page directory goes with the server.
set -eu
sudo -n rm -rf "$PAGE_DIR"
