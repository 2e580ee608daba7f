# Helpers put in front of every host script by components/render.py. Each checks before it changes
# anything and records a change in $changed, which the script reports last as `pihalb-changed: yes|no`.
set -eu
changed=no

# install_if_different CONTENT MODE DESTINATION: a root-owned file, written only when its content differs.
install_if_different() {
    staged=$(mktemp)
    printf '%s\n' "$1" >"$staged"
    if ! sudo -n cmp -s "$staged" "$3"; then
        sudo -n install -D -m "$2" -o root -g root "$staged" "$3"
        changed=yes
    fi
    rm -f "$staged"
}

# ensure_enabled UNIT: started at boot.
ensure_enabled() {
    if [ "$(systemctl is-enabled "$1" 2>/dev/null || true)" != enabled ]; then
        sudo -n systemctl enable "$1"
        changed=yes
    fi
}

# ensure_running UNIT: enabled at boot and active now.
ensure_running() {
    ensure_enabled "$1"
    if ! systemctl is-active --quiet "$1"; then
        sudo -n systemctl start "$1"
        changed=yes
    fi
}

# ensure_packages PACKAGE...: installed, the package lists refreshed first only when they are stale.
ensure_packages() {
    missing=""
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $pkg"
    done
    if [ -n "$missing" ]; then
        refresh_apt_lists
        # shellcheck disable=SC2086 # a list of package names
        apt_get install -y --no-install-recommends $missing
        echo "installed:$missing"
        changed=yes
    fi
}

# Waits for a dpkg lock held by someone else (unattended-upgrades on a freshly booted Pi, say).
apt_get() { sudo -n DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confold "$@"; }

refresh_apt_lists() {
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin "-${APT_MAX_AGE_MINUTES:-60}" 2>/dev/null | head -n 1)" ]; then
        apt_get update
    fi
}

report_changed() { echo "pihalb-changed: $changed"; }
