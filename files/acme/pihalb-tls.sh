#!/bin/bash
# pihalb-tls COMMAND: the certificate HAProxy serves on a balancer, kept valid (issue 19). Installed by
# the program's TLS step as /usr/local/sbin/pihalb-tls and run as root:
#   first    before HAProxy's first start: a short-lived self-signed certificate for the names from the
#            shared key, unless the PEM already holds a certificate for this key and these names;
#   install CHAIN [trusted]  checks CHAIN (the key's, every name, valid now; with `trusted`, also
#            verified to a trusted root), writes HAProxy's PEM (chain then key) atomically, then puts it
#            live through the runtime API (hitless);
#   sync     HAProxy serves the PEM's certificate (after a commit that failed, or a restart that raced);
#   renew [--now]  the timer's run: sync, adopt a newer certificate the peer serves, and obtain a new one
#            when due (a third of the lifetime left on the VIP holder, a sixth on the other balancer);
#            `--now` obtains one whatever is left (an operator's renewal, the lab tests');
#   settle   a deployment's first run: renew, then, while this balancer serves a certificate no root
#            vouches for (the first-start one), adopt the peer's as soon as it has one (bounded by
#            SETTLE_TIMEOUT_S, default 300): both balancers serve the same certificate when `up` ends.
# Settings (nothing secret) come from $PIHALB_TLS_ENV (default /etc/pihalb/tls/tls.env), written by the
# program. The keys stay in root's 0600 files: they reach HAProxy only in its PEM (0640, HAProxy's group)
# and through `docker exec`'s stdin, never on a command line, never in the output.
set -eu
umask 077
# shellcheck source=/dev/null # written by the program's TLS step
. "${PIHALB_TLS_ENV:-/etc/pihalb/tls/tls.env}"
# From the env file: KIND (acme|provided), NAMES (space-separated), KEY, ACCOUNT_KEY, CERT_FILE (the PEM on
# this host), HAPROXY_CERT (its name in HAProxy), HAPROXY_GID, CONTAINER, RUNTIME_PORT, TLS_DIR,
# PEM_OWNER (root), FIRST_VALIDITY_DAYS, TRUST_STORE, and for acme ACME_DIRECTORY_URL, ACME_EMAIL, ACME_CA_BUNDLE,
# ROOTS_URL, OBTAIN, VIP, INTERFACE, PEER, TLS_PORT. RUNTIME_ADDRESS (host:port) reaches the runtime
# API directly instead of through the container (the tests' HAProxy on loopback).

log() { echo "pihalb-tls: $*" >&2; }

# san: the names as a subjectAltName value (DNS:a,DNS:b).
san() {
    # shellcheck disable=SC2086 # a list of names
    printf 'DNS:%s,' $NAMES | sed 's/,$//'
}

# ---- certificates --------------------------------------------------------------------------------------

# leaf FILE: the first certificate of FILE, PEM.
leaf() { openssl x509 -in "$1"; }

# seconds_of DATE: openssl's date as seconds since the epoch.
seconds_of() { date -u -d "$1" +%s; }

not_before() { seconds_of "$(openssl x509 -in "$1" -noout -startdate | cut -d= -f2)"; }
not_after() { seconds_of "$(openssl x509 -in "$1" -noout -enddate | cut -d= -f2)"; }

# serial FILE: the leaf's serial as HAProxy prints it (upper-case hex, no leading zeros).
serial() { openssl x509 -in "$1" -noout -serial | cut -d= -f2 | sed 's/^0*//'; }

# for_our_key FILE: the leaf certifies the shared key.
for_our_key() {
    [ "$(openssl x509 -in "$1" -noout -pubkey 2>/dev/null)" = "$(openssl pkey -in "$KEY" -pubout)" ]
}

# covers_names FILE: every configured name matches the leaf (a wildcard covers one label).
covers_names() {
    for name in $NAMES; do
        openssl x509 -in "$1" -noout -checkhost "$name" 2>/dev/null | grep -q ' does match certificate' || return 1
    done
}

valid_now() {
    now=$(date -u +%s)
    [ "$(not_before "$1")" -le "$now" ] && [ "$now" -lt "$(not_after "$1")" ]
}

# trust_file: the roots a certificate must chain to: the system's, plus the ACME server's own roots
# when it publishes them (ROOTS_URL, Pebble's management port in the lab), fetched over https trusting
# ACME_CA_BUNDLE. Printed: the file's name.
trust_file() {
    trust=$TLS_DIR/trust.pem
    cat "$TRUST_STORE" >"$trust.new"
    if [ -n "${ROOTS_URL:-}" ]; then
        curl -fsS --max-time 20 ${ACME_CA_BUNDLE:+--cacert "$ACME_CA_BUNDLE"} "$ROOTS_URL" >>"$trust.new" ||
            log "could not fetch the ACME server's roots from $ROOTS_URL"
    fi
    mv -f "$trust.new" "$trust"
    echo "$trust"
}

# chains_to_trust FILE: the leaf verifies, through the chain's other certificates, to a trusted root.
chains_to_trust() {
    rest=$TLS_DIR/untrusted.pem
    awk '/-----BEGIN CERTIFICATE-----/ { n++ } n > 1' "$1" >"$rest"
    if [ -s "$rest" ]; then
        leaf "$1" | openssl verify -CAfile "$(trust_file)" -untrusted "$rest" >/dev/null 2>&1
    else
        leaf "$1" | openssl verify -CAfile "$(trust_file)" >/dev/null 2>&1
    fi
}

# acceptable FILE [trusted]: a chain this balancer may serve; says why not otherwise.
acceptable() {
    grep -q -- '-----BEGIN CERTIFICATE-----' "$1" || { log "no certificate in $1"; return 1; }
    if grep -q 'PRIVATE KEY' "$1"; then log "$1 holds a private key"; return 1; fi
    for_our_key "$1" || { log "$1 is not for this balancer's key"; return 1; }
    covers_names "$1" || { log "$1 does not cover every name of: $NAMES"; return 1; }
    valid_now "$1" || { log "$1 is not valid now"; return 1; }
    if [ "${2:-}" = trusted ] && ! chains_to_trust "$1"; then
        log "$1 does not chain to a trusted root"
        return 1
    fi
}

# ---- HAProxy's runtime API ------------------------------------------------------------------------------

# runtime: the command (and payload) on stdin sent to HAProxy's admin socket, its answer on stdout.
runtime() {
    if [ -n "${RUNTIME_ADDRESS:-}" ]; then
        # shellcheck disable=SC2016 # expanded by the inner bash
        bash -c 'exec 3<>"/dev/tcp/$1/$2" && cat >&3 && cat <&3' _ "${RUNTIME_ADDRESS%:*}" "${RUNTIME_ADDRESS##*:}"
    else
        # shellcheck disable=SC2016 # expanded by the bash inside the container
        docker exec -i "$CONTAINER" bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && cat >&3 && cat <&3' _ "$RUNTIME_PORT"
    fi
}

haproxy_up() { echo "show info" | runtime 2>/dev/null | grep -q '^Name: HAProxy'; }

# loads_pem: the running HAProxy's config has the PEM (not yet, when TLS was just turned on: the config
# step that follows reloads it with the file in place).
loads_pem() { echo "show ssl cert" | runtime 2>/dev/null | grep -qxF -e "$HAPROXY_CERT" -e "*$HAPROXY_CERT"; }

# live: HAProxy runs and serves from the PEM, so a new one can be committed at run time.
live() {
    if ! haproxy_up; then
        log "HAProxy is not running: it loads $CERT_FILE when it starts"
        return 1
    fi
    if ! loads_pem; then
        log "HAProxy's running config does not load $HAPROXY_CERT yet: its next reload does"
        return 1
    fi
}

# served_serial: the serial of the certificate HAProxy serves from its PEM, empty if it cannot say.
served_serial() {
    echo "show ssl cert $HAPROXY_CERT" | runtime 2>/dev/null | sed -n 's/^Serial: 0*//p' | head -n 1
}

# commit_live: HAProxy serves the PEM's chain and key, without a reload. One certificate per transaction,
# and every reply checked to name our file: HAProxy 2.6.12 (Debian 12's) applies a `set ssl cert` for one
# file to another file's open transaction (fixed upstream in 984d2cfb6). A transaction left open by
# anyone is aborted first; a reply that names another file aborts ours.
commit_live() {
    open=$(echo "show ssl cert" | runtime | awk '/^# transaction/ { t = 1; next } /^#/ { t = 0 } t && /^\*/ { print substr($0, 2) }')
    for path in $open; do
        log "aborting an open transaction on $path"
        echo "abort ssl cert $path" | runtime >/dev/null
    done
    reply=$({ printf 'set ssl cert %s <<\n' "$HAPROXY_CERT" && grep -v '^[[:space:]]*$' "$CERT_FILE" && echo; } | runtime)
    case $reply in
        "Transaction created for certificate $HAPROXY_CERT!"* | "Transaction updated for certificate $HAPROXY_CERT!"*) ;;
        *)
            log "set ssl cert: unexpected reply: $(echo "$reply" | head -n 1)"
            echo "abort ssl cert $HAPROXY_CERT" | runtime >/dev/null || true
            return 1
            ;;
    esac
    reply=$(echo "commit ssl cert $HAPROXY_CERT" | runtime)
    case $reply in
        *"Committing $HAPROXY_CERT"*Success!*) log "HAProxy serves serial $(serial "$CERT_FILE")" ;;
        *)
            log "commit ssl cert: unexpected reply: $(echo "$reply" | head -n 1)"
            echo "abort ssl cert $HAPROXY_CERT" | runtime >/dev/null || true
            return 1
            ;;
    esac
}

# write_pem CHAIN: HAProxy's PEM, chain then key, replaced atomically (a reload or a restart loads it).
write_pem() {
    dir=$(dirname "$CERT_FILE")
    install -d -m 0750 -o "$PEM_OWNER" -g "$HAPROXY_GID" "$dir"
    tmp=$(mktemp "$dir/.site.XXXXXX")
    { grep -v '^[[:space:]]*$' "$1" && grep -v '^[[:space:]]*$' "$KEY"; } >"$tmp"
    chown "$PEM_OWNER:$HAPROXY_GID" "$tmp"
    chmod 0640 "$tmp"
    mv -f "$tmp" "$CERT_FILE"
}

# install CHAIN [trusted]: checked, on disk, then live when HAProxy runs.
install_chain() {
    acceptable "$@" || return 1
    write_pem "$1"
    log "installed serial $(serial "$CERT_FILE"), valid until $(openssl x509 -in "$CERT_FILE" -noout -enddate | cut -d= -f2)"
    if live; then commit_live; fi
}

# sync: HAProxy serves what the PEM holds.
sync_live() {
    [ -s "$CERT_FILE" ] && live 2>/dev/null || return 0
    if [ "$(served_serial)" != "$(serial "$CERT_FILE")" ]; then
        log "HAProxy serves another certificate than $CERT_FILE: committing the file's"
        commit_live
    fi
}

# first: a certificate HAProxy can start with; kept when the PEM already has one for this key and names.
first_certificate() {
    if [ -s "$CERT_FILE" ] && for_our_key "$CERT_FILE" && covers_names "$CERT_FILE" && valid_now "$CERT_FILE"; then
        return 0
    fi
    first=${NAMES%% *}
    openssl req -x509 -new -key "$KEY" -subj "/CN=$first" -addext "subjectAltName=$(san)" \
        -days "$FIRST_VALIDITY_DAYS" -out "$TLS_DIR/first.pem" 2>/dev/null
    write_pem "$TLS_DIR/first.pem"
    log "wrote a self-signed certificate for $NAMES (until the first issuance)"
    echo changed
}

# ---- the renewal ----------------------------------------------------------------------------------------

holds_vip() { ip -o -4 addr show dev "$INTERFACE" 2>/dev/null | grep -q " $VIP/"; }

# due FILE FRACTION: less than 1/FRACTION of the leaf's lifetime is left. A certificate that is not
# trusted (the first-start one) is due at once for the VIP holder (FRACTION 3); the other balancer
# counts its lifetime like any other's, so on a first deployment only the holder orders, and the other
# adopts its certificate (or orders once a sixth of the first-start certificate's life is left).
due() {
    if [ "$2" = 3 ] && ! chains_to_trust "$1"; then
        return 0
    fi
    life=$(($(not_after "$1") - $(not_before "$1")))
    ! openssl x509 -in "$1" -noout -checkend $((life / $2)) >/dev/null
}

# adopt: the chain the peer serves on its own address, when it is for our key and names, trusted, and
# lasts longer than ours (or ours is the first-start one). The VIP would answer with whichever balancer holds it, maybe this one.
adopt_from_peer() {
    peer_chain=$TLS_DIR/peer.pem
    timeout 20 openssl s_client -connect "$PEER:$TLS_PORT" -servername "${NAMES%% *}" -showcerts </dev/null 2>/dev/null |
        sed -n '/^-----BEGIN CERTIFICATE-----$/,/^-----END CERTIFICATE-----$/p' >"$peer_chain" || true
    if [ ! -s "$peer_chain" ]; then
        log "the peer $PEER:$TLS_PORT served no certificate"
        return 0
    fi
    # Newer: a later end, or ours is not a trusted one (the first-start certificate).
    if [ "$(not_after "$peer_chain")" -le "$(not_after "$CERT_FILE")" ] && chains_to_trust "$CERT_FILE"; then
        return 0
    fi
    log "the peer serves a certificate valid until $(openssl x509 -in "$peer_chain" -noout -enddate | cut -d= -f2): adopting it"
    install_chain "$peer_chain" trusted
}

obtain() {
    work=$TLS_DIR/acme
    install -d -m 0700 "$work"
    install -m 0600 "$ACCOUNT_KEY" "$work/account.pem"
    openssl req -new -key "$KEY" -subj "/CN=${NAMES%% *}" -addext "subjectAltName=$(san)" -out "$work/csr.pem" 2>/dev/null
    rm -f "$work/chain.pem"
    ACME_DIRECTORY_URL=$ACME_DIRECTORY_URL ACME_EMAIL=$ACME_EMAIL ACME_CA_BUNDLE=$ACME_CA_BUNDLE bash "$OBTAIN" "$work"
    install_chain "$work/chain.pem" trusted
}

renew() {
    sync_live
    if [ "$KIND" != acme ]; then
        return 0
    fi
    adopt_from_peer || log "not adopted"
    if holds_vip; then
        role="the VIP holder" fraction=3
    else
        role="not the VIP holder" fraction=6
    fi
    if [ "${1:-}" = --now ]; then
        log "renewing ($role; asked to renew now)"
        obtain
    elif due "$CERT_FILE" "$fraction"; then
        log "renewing ($role; less than 1/$fraction of the lifetime left, or not yet issued)"
        obtain
    else
        log "not due ($role): valid until $(openssl x509 -in "$CERT_FILE" -noout -enddate | cut -d= -f2)"
    fi
}

# settle: while the peer rolls and orders (the MASTER, after this BACKUP), wait for its certificate.
settle() {
    renew
    deadline=$(($(date -u +%s) + ${SETTLE_TIMEOUT_S:-300}))
    while ! chains_to_trust "$CERT_FILE"; do
        if [ "$(date -u +%s)" -ge "$deadline" ]; then
            log "no trusted certificate here or on the peer after ${SETTLE_TIMEOUT_S:-300} s: the timer goes on trying"
            return 1
        fi
        sleep 5
        adopt_from_peer || true
    done
}

# One run at a time (the timer, a manual run, the program's step).
exec 9>"$TLS_DIR/.lock"
flock -w 600 9
case ${1:-} in
    first) first_certificate ;;
    install) install_chain "$2" "${3:-}" ;;
    sync) sync_live ;;
    renew) renew "${2:-}" ;;
    settle) [ "$KIND" != acme ] || settle ;;
    *)
        echo "usage: pihalb-tls first|install CHAIN [trusted]|sync|renew [--now]|settle" >&2
        exit 2
        ;;
esac
