#!/usr/bin/env bash
# Two Facteur builds against each other, no peers: memory per idle IMAP session (LOGIN, SELECT of
# 100 messages, IDLE; the server's RSS divided by the sessions held) and the IMAP workload of
# run-peers.sh (SELECT + FETCH, FETCH bodies, SEARCH, SORT, STORE) on a mailbox of M messages.
# Each build runs ROUNDS times, alternating, each time on a fresh data folder and free ports.
#
#   bench/compare-builds.sh OLD_BIN NEW_BIN [IDLE_SESSIONS=1000] [MESSAGES=5000] [ROUNDS=2]
#
# Build the old one from its commit first (e.g. `git checkout X && cargo build --release -p
# facteur && cp target/release/facteur /tmp/facteur-X`). Needs python3; the idle run needs a
# descriptor limit above IDLE_SESSIONS.
set -euo pipefail
main() {
cd "$(dirname "$0")/.."
local old=$1 new=$2 sessions=${3:-1000} messages=${4:-5000} rounds=${5:-2}
local py="python3 bench/lib/peerbench.py" pass=bench-password-1
run() { # bin workload -> one result line
  local bin=$1 workload=$2 d pid port
  d=$(mktemp -d)
  cat >"$d/facteur.toml" <<TOML
[server]
hostname = "mx.bench.test"
primary_domain = "bench.test"
[listeners]
smtp = ["127.0.0.1:0"]
submission = []
submissions = []
imap = []
imaps = ["127.0.0.1:0"]
pop3 = []
pop3s = []
lmtp = []
[smtp]
inbound_auth = false
[dns]
nameservers = ["127.0.0.1:9"]
[limits]
max_connections = 20000
max_connections_per_ip = 20000
max_connections_per_user = 20000
[log]
level = "warn"
TOML
  "$bin" --data "$d" serve --domain bench.test >"$d/stdout" 2>"$d/stderr" &
  pid=$!
  for _ in $(seq 600); do grep -q '^Ready\.' "$d/stdout" 2>/dev/null && break; sleep 0.1; done
  port=$(awk '$1 == "imaps" {print $2}' "$d/stdout"); port=${port##*:}
  printf '%s' "$pass" | "$bin" --data "$d" account add u@bench.test --password-stdin >/dev/null 2>&1
  if [ "$workload" = idle ]; then
    IMAP_SSL=1 $py fill-imap "$port" u@bench.test "$pass" 100 4096 none 0 >/dev/null
    IMAP_SSL=1 $py idle "$port" u@bench.test "$pass" "$sessions" "$pid"
  else
    IMAP_SSL=1 $py fill-imap "$port" u@bench.test "$pass" "$messages" 4096 zanzibarquux 5 >/dev/null
    IMAP_SSL=1 $py imap "$port" u@bench.test "$pass" "$messages" zanzibarquux 5 3
  fi
  kill "$pid"; wait "$pid" || true
  rm -rf "$d"
}
for _ in $(seq "$rounds"); do
  for which in old new; do
    local bin=$old; [ "$which" = new ] && bin=$new
    echo "$which idle $sessions: $(run "$bin" idle)"
    echo "$which imap $messages: $(run "$bin" imap)"
  done
done
}
main "$@"
