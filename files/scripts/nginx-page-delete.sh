# Undo nginx-page.sh: the page directory goes with the server (and /etc/pihalb once nothing else is in it).
set -eu
sudo -n rm -rf "$(dirname "$PAGE_DIR")"
sudo -n rmdir --ignore-fail-on-non-empty /etc/pihalb 2>/dev/null || true
