#!/usr/bin/env bash
# The whole test suite, as CI runs it. Installs what the tests need, then runs every crate's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use (none is needed by the tests that exist yet; later issues add
# swaks, python3 clients, postfix...). Installed only when missing, and only as root.
need_pkgs=()
if [ ${#need_pkgs[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
  missing=()
  for p in "${need_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
