#!/usr/bin/env bash
# Installs the benchmark peers from Debian's packages when missing: postfix (with smtp-source and
# smtp-sink), dovecot-imapd, dovecot-pop3d, dovecot-lmtpd. Non-interactive, and the package scripts
# are kept from starting system daemons (a policy-rc.d answering 101 during the install), so no system
# Postfix or Dovecot is left listening on the standard ports.
set -euo pipefail

pkgs=(postfix dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "install-peers: missing ${missing[*]} and not root; install them first" >&2
  exit 1
fi

# A policy-rc.d that forbids starting services, only if there is none (Docker images ship one).
policy=/usr/sbin/policy-rc.d
ours=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# written by facteur bench/lib/install-peers.sh for the duration of an install\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  ours=1
fi
# An if, not `&&`: under set -e a false test as the last command of the EXIT trap would make
# the script exit 1 after a successful install (seen where an image already ships a policy-rc.d).
cleanup() { if [ "$ours" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string bench.localdomain" | debconf-set-selections
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-peers: installed ${missing[*]}"
