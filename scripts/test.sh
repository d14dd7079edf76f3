#!/usr/bin/env bash
# The whole test suite, as CI runs it. Installs what the tests need, then runs every crate's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# The whole suite needs root: it installs the Debian packages of the real peers, and the full-disk
# tests mount small tmpfs filesystems. (`cargo test` alone runs everything else as any user.)
if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh needs root (package installs, tmpfs mounts for the full-disk tests)" >&2
  exit 1
fi

# Debian packages the tests use (real peers and clients). Installed only when missing, and only as
# root. Postfix is preseeded to "No configuration" and kept from starting a system instance: the
# tests start their own throwaway instances on loopback ports.
# systemd (systemd-analyze), adduser, passwd (useradd), util-linux (setpriv) and init-system-helpers:
# the Debian package test (scripts/test-deb.sh) and the privilege tests (tests/safe_defaults.rs).
# clamav-daemon: the clamd that tests/malware_checks.rs starts with its own signatures.
need_pkgs=(postfix openssl python3 swaks isync curl dnsmasq-base sslscan fetchmail getmail6 nsd unbound ldnsutils
  bsdutils fail2ban systemd adduser passwd util-linux init-system-helpers clamav-daemon)
if [ ${#need_pkgs[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
  missing=()
  for p in "${need_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    policy=/usr/sbin/policy-rc.d
    had_policy=0; [ -e "$policy" ] && had_policy=1
    if [ $had_policy = 0 ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    if [ $had_policy = 0 ]; then rm -f "$policy"; fi
  fi
fi

# dkimpy (with PyNaCl for Ed25519) is the independent DKIM verifier of crates/mailauth's tests.
if ! python3 -c 'import dkim, nacl' >/dev/null 2>&1; then
  python3 -m pip install --quiet dkimpy pynacl
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
# The full-disk tests (real ENOSPC on small tmpfs mounts) are #[ignore]d because mounting needs
# root; run them explicitly here (docs/testing.md, "Ignored tests").
cargo test -p store --test sqlite_faults -- --ignored
cargo test -p facteur --test faults --test disk_full_serving -- --ignored

# The Debian package: build (cargo-deb, pinned in the script), dpkg -i, systemd-analyze verify, the
# installed binary as the facteur user receiving and serving a message, dpkg --purge.
scripts/test-deb.sh
