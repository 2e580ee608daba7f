# The paper's `install` role: passwordless sudo via a validated drop-in, packages updated, Docker
# installed, enabled and started, and the login user allowed to use it (the Docker provider connects
# over ssh:// as that user). Idempotent: each step checks first and reports whether it changed anything.
set -eu

# The settings admit only POSIX-style login names; refuse anything else rather than write it to sudoers.
case "$LOGIN_USER" in
'' | [!a-z_]* | *[!a-z0-9_-]*)
    echo "refusing login user '$LOGIN_USER' for the sudoers drop-in" >&2
    exit 1
    ;;
esac
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

# shellcheck disable=SC2086 # a list of package names
ensure_packages $PACKAGES
# The engine is held: an `apt-get upgrade` here or unattended-upgrades on every Pi at once would
# restart each host's dockerd together. Upgrade it on purpose, one host at a time (README).
for pkg in $ENGINE_PACKAGES; do
    if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
        && ! apt-mark showhold | grep -qx "$pkg"; then
        sudo -n apt-mark hold "$pkg" >/dev/null
        echo "$pkg held"
        changed=yes
    fi
done
ensure_running docker
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
report_changed
