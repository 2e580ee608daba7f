# The paper's `install` role: passwordless sudo via a validated drop-in, packages updated, Docker
# installed, enabled and started, and the login user allowed to use it (the Docker provider connects
# over ssh:// as that user). Idempotent: each step checks first and reports whether it changed anything.
set -eu
export DEBIAN_FRONTEND=noninteractive
changed=no
apt_get() { sudo -n DEBIAN_FRONTEND=noninteractive apt-get -q -o Dpkg::Options::=--force-confold "$@"; }
apt_lists_fresh() {
    [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin "-$APT_MAX_AGE_MINUTES" 2>/dev/null | head -n 1)" ]
}
refresh_apt_lists() {
    if ! apt_lists_fresh; then
        apt_get update
    fi
}

sudoers_line="$LOGIN_USER ALL=(ALL:ALL) NOPASSWD:ALL"
if [ "$(sudo -n cat /etc/sudoers.d/pihalb 2>/dev/null || true)" != "$sudoers_line" ]; then
    staged=$(mktemp)
    printf '%s\n' "$sudoers_line" >"$staged"
    sudo -n visudo -cf "$staged"
    sudo -n install -m 0440 -o root -g root "$staged" /etc/sudoers.d/pihalb
    rm -f "$staged"
    echo "sudoers drop-in /etc/sudoers.d/pihalb installed"
    changed=yes
fi

if [ "$UPGRADE_PACKAGES" = yes ]; then
    refresh_apt_lists
    pending=$(apt-get -s -o Debug::NoLocking=1 upgrade | grep -c '^Inst ' || true)
    if [ "$pending" -gt 0 ]; then
        apt_get -y upgrade
        echo "$pending packages upgraded"
        changed=yes
    fi
fi

missing=""
for pkg in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    refresh_apt_lists
    # shellcheck disable=SC2086 # a list of package names
    apt_get install -y --no-install-recommends $missing
    echo "installed:$missing"
    changed=yes
fi

if [ "$(systemctl is-enabled docker 2>/dev/null || true)" != enabled ]; then
    sudo -n systemctl enable docker
    changed=yes
fi
if ! systemctl is-active --quiet docker; then
    sudo -n systemctl start docker
    changed=yes
fi
if ! id -nG "$LOGIN_USER" | tr ' ' '\n' | grep -qx docker; then
    sudo -n usermod -aG docker "$LOGIN_USER"
    echo "$LOGIN_USER added to the docker group"
    changed=yes
fi
for _ in $(seq 1 30); do
    sudo -n docker info >/dev/null 2>&1 && break
    sleep 1
done
sudo -n docker info --format 'docker {{.ServerVersion}} on {{.Architecture}}, storage {{.Driver}}'
echo "pihalb-changed: $changed"
