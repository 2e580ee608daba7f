# HTTPS on a balancer (issue 19): the shared keys in root's 0600 files, the certificate keeper and its
# settings, and the certificate HAProxy serves: the provided chain, or before the first ACME issuance a
# short-lived self-signed one from the shared key (HAProxy does not start an ssl bind without one). The
# keys arrive in this script, on the step's stdin; they are written through root's stdin, never on a
# command line, and never printed. The PEM HAProxy reads (chain then key) is the keeper's to write:
# 0640, HAProxy's group, under the config directory the container mounts.
set -eu

# install_secret CONTENT DESTINATION: a root-owned 0600 file, written only when its content differs.
install_secret() {
    if ! printf '%s\n' "$1" | sudo -n cmp -s - "$2"; then
        # shellcheck disable=SC2016 # expanded by root's shell
        printf '%s\n' "$1" | sudo -n sh -c 'umask 077 && cat >"$1.new" && mv -f "$1.new" "$1"' _ "$2"
        changed=yes
    fi
}

# shellcheck disable=SC2086 # a list of package names
ensure_packages $PACKAGES
sudo -n install -d -m 0700 -o root -g root "$TLS_DIR"
sudo -n install -d -m 0755 -o root -g root "$LIB_DIR"
install_secret "$KEY_PEM" "$TLS_DIR/site.key"
if [ -n "$ACCOUNT_KEY_PEM" ]; then
    install_secret "$ACCOUNT_KEY_PEM" "$TLS_DIR/account.pem"
fi
install_if_different "$(printf '%s' "$KEEPER_B64" | base64 -d)" 0755 "$KEEPER"
install_if_different "$(printf '%s' "$OBTAIN_B64" | base64 -d)" 0755 "$LIB_DIR/acme-obtain.sh"
install_if_different "$(printf '%s' "$ENV_B64" | base64 -d)" 0644 "$TLS_DIR/tls.env"
if [ -n "$ACME_CA_BUNDLE_PEM" ]; then
    install_if_different "$ACME_CA_BUNDLE_PEM" 0644 "$TLS_DIR/acme-ca.pem"
fi
if [ -n "$CHAIN_PEM" ]; then
    # provided: the chain the program checked, installed (and put live) when HAProxy's PEM differs.
    install_if_different "$CHAIN_PEM" 0644 "$TLS_DIR/provided.pem"
    # shellcheck disable=SC2016 # expanded by root's shell
    if ! sudo -n sh -c 'cat "$1" "$2" | grep -v "^[[:space:]]*$" | cmp -s - "$3"' _ \
        "$TLS_DIR/provided.pem" "$TLS_DIR/site.key" "$CERT_FILE"; then
        sudo -n "$KEEPER" install "$TLS_DIR/provided.pem"
        changed=yes
    fi
else
    # acme: a certificate to start with, kept once one for this key and these names is there.
    if [ -n "$(sudo -n "$KEEPER" first)" ]; then
        changed=yes
    fi
fi
# HAProxy serves what the PEM holds (a no-op unless it runs another certificate).
sudo -n "$KEEPER" sync
report_changed
