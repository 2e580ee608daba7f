#!/bin/bash
# acme-obtain.sh WORKDIR: a certificate for WORKDIR/csr.pem from the ACME server at $ACME_DIRECTORY_URL,
# for the account whose key is WORKDIR/account.pem, written (full chain, leaf first) to WORKDIR/chain.pem.
#
# Installed on each balancer and run by its renewal timer (as root, WORKDIR a private directory); the
# keys never leave files of mode 0600 and never appear on a command line. The HTTP-01 challenges are answered by HAProxy itself,
# statelessly (<token>.<account thumbprint>, haproxy.cfg), on whichever balancer holds the VIP: dehydrated
# writes its token files into a directory nobody serves, and no hook is needed.
# Inputs (environment): ACME_DIRECTORY_URL; ACME_EMAIL (may be empty); ACME_CA_BUNDLE, a file of CAs to
# trust for the ACME server's https (Pebble's in the lab), or empty for the system's.
# Client: Debian 12's dehydrated 0.7.0 (`--signcsr`, RSA account keys only).
set -eu
umask 077
work=$1
if [ ! -s "$work/account.pem" ] || [ ! -s "$work/csr.pem" ]; then
    echo "acme-obtain: $work needs account.pem and csr.pem" >&2
    exit 2
fi
mkdir -p "$work/dehydrated" "$work/challenges"
curl_opts=""
if [ -n "${ACME_CA_BUNDLE:-}" ]; then
    curl_opts="--cacert $ACME_CA_BUNDLE"
fi
# dehydrated's config is bash it sources: every value quoted with printf %q.
{
    printf 'CA=%q\n' "$ACME_DIRECTORY_URL"
    printf 'BASEDIR=%q\n' "$work/dehydrated"
    printf 'WELLKNOWN=%q\n' "$work/challenges"
    printf 'CONTACT_EMAIL=%q\n' "${ACME_EMAIL:-}"
    printf 'CURL_OPTS=%q\n' "$curl_opts"
    printf 'CHALLENGETYPE=http-01\n'
} >"$work/dehydrated.conf"
dehydrated() { command dehydrated --config "$work/dehydrated.conf" --privkey "$work/account.pem" "$@"; }
# Registering an existing key is a lookup (RFC 8555 §7.3): the same account on both balancers.
dehydrated --register --accept-terms >"$work/register.log" 2>&1 || {
    cat "$work/register.log" >&2
    exit 1
}
dehydrated --signcsr "$work/csr.pem" >"$work/signed.out" 2>"$work/signcsr.log" || {
    cat "$work/signcsr.log" >&2
    exit 1
}
# Only the PEM blocks (dehydrated prints comment lines around them).
sed -n '/^-----BEGIN CERTIFICATE-----$/,/^-----END CERTIFICATE-----$/p' "$work/signed.out" >"$work/chain.pem.new"
grep -q -- '-----BEGIN CERTIFICATE-----' "$work/chain.pem.new" || {
    echo "acme-obtain: no certificate in dehydrated's answer" >&2
    cat "$work/signcsr.log" >&2
    exit 1
}
mv -f "$work/chain.pem.new" "$work/chain.pem"
