# The paper's `ansible -m ping`: log in with the key, check the architecture the images are built for,
# and that sudo works without a password. Every other step of a host waits for this one.
set -eu
arch=$(uname -m)
if [ "$arch" != "$EXPECTED_ARCH" ]; then
    echo "pihalb: $(hostname) is $arch but the stack's platform needs $EXPECTED_ARCH (pihalb:cluster.platform)" >&2
    exit 1
fi
if ! sudo -n true 2>/dev/null; then
    echo "pihalb: $(id -un)@$(hostname) needs passwordless sudo for the first run; add '$(id -un) ALL=(ALL:ALL) NOPASSWD:ALL' with visudo" >&2
    exit 1
fi
command -v apt-get >/dev/null || { echo "pihalb: $(hostname) has no apt-get (Debian/Ubuntu expected)" >&2; exit 1; }
echo "pong from $(hostname) ($arch)"
report_changed
