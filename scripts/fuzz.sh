#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS_PER_TARGET seconds (default 30).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Installs cargo-fuzz when missing, builds the targets (libFuzzer, AddressSanitizer, debug
# assertions on), replays fuzz/regressions/<target>/ and the seeds, then fuzzes. Exits non-zero
# when a target crashes, leaks, runs out of memory or time, and prints where the input is.
#
# Only the stable toolchain is available, so RUSTC_BOOTSTRAP=1 unlocks the -Z flags cargo-fuzz
# passes (-Zsanitizer). FUZZ_SANITIZER=none builds without a sanitizer (faster, finds less).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

secs=${1:-30}
shift || true
case "$secs" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2 ;;
esac

export RUSTC_BOOTSTRAP=1
sanitizer=${FUZZ_SANITIZER:-address}
# The fuzz project has its own target directory (fuzz/target), whatever the environment says.
unset CARGO_TARGET_DIR

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# Per-target input size limits: big enough for the structures each parser sees, small enough
# that an execution stays fast.
max_len() {
  case "$1" in
    message_analyze | imap_binary | message_prepared | spam_features) echo 262144 ;;
    config_parse) echo 16384 ;;
    address_parse) echo 1024 ;;
    blob_id) echo 256 ;;
    smtp_command) echo 2048 ;;
    smtp_session) echo 16384 ;;
    imap_session) echo 16384 ;;
    *) echo 4096 ;;
  esac
}
# Extra read-only seed folders, besides fuzz/seeds/<target>.
extra_seeds() {
  case "$1" in
    message_analyze | imap_binary | message_prepared | spam_features) echo "$root/crates/message/tests/corpus" ;;
  esac
}

cd fuzz
if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

echo "fuzz.sh: building ${targets[*]} (sanitizer: $sanitizer)"
# 16 codegen units: a much faster build on small machines, at a small cost in executions/s.
for t in "${targets[@]}"; do
  cargo fuzz build --sanitizer "$sanitizer" --codegen-units 16 "$t"
done
host=$(rustc -vV | sed -n 's/^host: //p')
bindir="$root/fuzz/target/$host/release"

failed=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t" "seeds/$t" "regressions/$t"
  dirs=("corpus/$t" "regressions/$t" "seeds/$t")
  extra=$(extra_seeds "$t")
  [ -n "$extra" ] && dirs+=("$extra")
  log="artifacts/$t/last-run.log"
  echo "fuzz.sh: $t for ${secs}s (max_len $(max_len "$t"))"
  set +e
  # -timeout: one input taking more than 10 s is reported as a hang.
  # -rss_limit_mb / -malloc_limit_mb: memory per process is bounded, so a blow-up is a failure.
  "$bindir/$t" \
    -max_total_time="$secs" \
    -max_len="$(max_len "$t")" \
    -rss_limit_mb=2048 \
    -malloc_limit_mb=2048 \
    -timeout=10 \
    -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" \
    "${dirs[@]}" >"$log" 2>&1
  status=$?
  set -e
  stats=$(grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$log" | sed 's/^stat:://' | tr '\n' ' ' | tr -s ' ')
  if [ $status -eq 0 ]; then
    echo "fuzz.sh: $t OK: $stats"
  else
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    echo "fuzz.sh: $t FAILED (exit $status); log: fuzz/$log" >&2
    grep -E '^(==[0-9]+==ERROR|SUMMARY|thread .* panicked)' "$log" | head -5 >&2 || true
    if [ -n "$artifact" ]; then
      echo "fuzz.sh: crashing input: fuzz/$artifact" >&2
      echo "fuzz.sh: minimise with: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz tmin $t $artifact" >&2
    fi
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: all targets ran ${secs}s without a failure"
