#!/usr/bin/env bash
# Outbound delivery rate: Facteur's queue against Postfix's, both delivering to the same smtp-sink
# on loopback, in the same run.
#
#   bench/outbound.sh                  # 5,000 messages of 4 KiB
#   MESSAGES=1000 bench/outbound.sh    # fewer
#
# Method (the same for both): the sink is down while MESSAGES messages are injected with
# smtp-source (20 sessions), so everything waits in the queue; then the sink starts, the queue is
# flushed (`postqueue -f` / `facteur queue flush`) and we time until the queue is empty. That is
# the outbound delivery alone: routing, connection handling, SMTP client, queue bookkeeping.
# Postfix: a throwaway instance (scripts/postfix-peer.sh) with relayhost = the sink. Facteur: an
# alias on its MX forwards to rcpt@sink.test, whose MX (a dnsmasq on loopback) is the sink.
# Needs root, Postfix (smtp-sink, smtp-source) and dnsmasq: scripts/test.sh installs them.
# Prints a Markdown row; APPEND_DOC=1 appends it to docs/benchmarks.md.
set -euo pipefail
main() {
cd "$(dirname "$0")/.."
ROOT=$PWD
MESSAGES=${MESSAGES:-5000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-4096}
APPEND_DOC=${APPEND_DOC:-0}
RUN=$(mktemp -d /tmp/facteur-outbound.XXXXXX)
chmod 755 "$RUN"
SINK_PID="" F_PID="" DNS_PID=""
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cleanup() {
  set +e
  [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null
  [ -n "$F_PID" ] && kill "$F_PID" 2>/dev/null && wait "$F_PID" 2>/dev/null
  [ -n "$DNS_PID" ] && kill "$DNS_PID" 2>/dev/null
  [ -d "$RUN/postfix" ] && bash "$ROOT/scripts/postfix-peer.sh" stop "$RUN/postfix" >/dev/null 2>&1
  rm -rf "$RUN"
}
trap cleanup EXIT
SINK_PORT=$(freeport)
start_sink() {
  # -c: count; the sink answers 250 to everything, with PIPELINING and 8BITMIME.
  smtp-sink -u postfix "127.0.0.1:$SINK_PORT" 1024 &
  SINK_PID=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$SINK_PORT") 2>/dev/null && return; sleep 0.1; done
  echo "smtp-sink did not start" >&2; exit 1
}
stop_sink() { kill "$SINK_PID"; wait "$SINK_PID" 2>/dev/null || true; SINK_PID=""; }
now() { date +%s.%N; }

# ------------------------------------------------------------------ Postfix
log "Postfix: injecting $MESSAGES x $SIZE bytes with the sink down"
mkdir -p "$RUN/postfix"
pf=$(bash "$ROOT/scripts/postfix-peer.sh" start "$RUN/postfix" smtp "127.0.0.1:$SINK_PORT")
PF_SMTPD=$(sed -n 's/^smtpd=//p' <<<"$pf")
smtp-source -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" -f sender@bench.test -t rcpt@sink.test "$PF_SMTPD"
pf_queue() { postqueue -c "$RUN/postfix/etc" -j 2>/dev/null | wc -l; }
for _ in $(seq 600); do [ "$(pf_queue)" -ge "$MESSAGES" ] && break; sleep 0.1; done
start_sink
t0=$(now)
postqueue -c "$RUN/postfix/etc" -f
while [ "$(pf_queue)" -gt 0 ]; do sleep 0.05; done
t1=$(now)
stop_sink
PF_RATE=$(python3 -c "print(f'{$MESSAGES/($t1-$t0):.0f}')")
PF_SECS=$(python3 -c "print(f'{$t1-$t0:.2f}')")
log "Postfix: $MESSAGES delivered in ${PF_SECS}s ($PF_RATE msg/s)"
bash "$ROOT/scripts/postfix-peer.sh" stop "$RUN/postfix" >/dev/null

# ------------------------------------------------------------------ Facteur
(cd "$ROOT" && cargo build --release -q -p facteur)
BIN=$ROOT/target/release/facteur
DNS_PORT=$(freeport)
dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --listen-address=127.0.0.1 \
  --bind-interfaces --pid-file= --local=/test/ --port="$DNS_PORT" \
  --mx-host=sink.test,mx.sink.test,10 --host-record=mx.sink.test,127.0.0.1 &
DNS_PID=$!
F_DATA=$RUN/facteur
mkdir -p "$F_DATA"
cat >"$F_DATA/facteur.toml" <<TOML
[server]
hostname = "mx.bench.test"
primary_domain = "bench.test"
# The bench runs as root on a throwaway folder; a real server switches to its own user.
user = "root"
[listeners]
smtp = ["127.0.0.1:0"]
submission = []
submissions = []
imap = []
imaps = []
pop3 = []
pop3s = []
[smtp]
# Postfix checks no SPF/DKIM/DMARC in this setup either, and the bench must not query outside DNS.
inbound_auth = false
[queue]
remote_port = $SINK_PORT
[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]
[log]
level = "warn"
TOML
"$BIN" --data "$F_DATA" serve --domain bench.test >"$F_DATA/stdout" 2>"$F_DATA/stderr" &
F_PID=$!
for _ in $(seq 600); do grep -q '^Ready\.' "$F_DATA/stdout" 2>/dev/null && break; sleep 0.05; done
F_SMTP=$(awk '$1 == "smtp" {print $2}' "$F_DATA/stdout")
"$BIN" --data "$F_DATA" alias add fan@bench.test rcpt@sink.test >/dev/null
log "Facteur: injecting $MESSAGES x $SIZE bytes with the sink down"
smtp-source -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" -f sender@bench.test -t fan@bench.test "$F_SMTP"
f_queue() { "$BIN" --data "$F_DATA" --json queue list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
# Wait until every entry has had its failed attempt (the sink is down), so the flush starts them all.
f_attempted() { "$BIN" --data "$F_DATA" --json queue list | python3 -c 'import json,sys; q=json.load(sys.stdin); print(sum(1 for e in q if e["attempts"] > 0))'; }
for _ in $(seq 600); do [ "$(f_attempted)" -ge "$MESSAGES" ] && break; sleep 0.2; done
start_sink
t0=$(now)
"$BIN" --data "$F_DATA" queue flush >/dev/null
while [ "$(f_queue)" -gt 0 ]; do sleep 0.05; done
t1=$(now)
stop_sink
F_RATE=$(python3 -c "print(f'{$MESSAGES/($t1-$t0):.0f}')")
F_SECS=$(python3 -c "print(f'{$t1-$t0:.2f}')")
log "Facteur: $MESSAGES delivered in ${F_SECS}s ($F_RATE msg/s)"

RATIO=$(python3 -c "print(f'{$F_RATE/$PF_RATE:.2f}')")
ROW="| outbound delivery to smtp-sink, $MESSAGES x $((SIZE / 1024)) KiB queued, one destination | $F_RATE msg/s (${F_SECS} s) | $PF_RATE msg/s (${PF_SECS} s) | $RATIO |"
echo "$ROW"
if [ "$APPEND_DOC" = 1 ]; then
  { echo; echo "Outbound (bench/outbound.sh, $(date -u +%Y-%m-%d), $(postconf -h mail_version | sed 's/^/Postfix /')):"; echo; echo "| workload | Facteur | Postfix | ratio |"; echo "|---|---|---|---|"; echo "$ROW"; } >>"$ROOT/docs/benchmarks.md"
fi
}
main "$@"; exit
