#!/usr/bin/env bash
# Where Facteur's SMTP ingest time goes: one Facteur (release build) with the inbound checks on
# against a loopback dnsmasq (SPF and DMARC p=reject for the sender's domain), driven by
# smtp-source, recorded with `perf record -g` for the whole run, then summarised.
#
#   bench/smtp-profile.sh                     # 10 sessions, 5000 x 4 KiB
#   SESSIONS=20 MESSAGES=20000 SIZE=4096 FACTEUR_BIN=/path/to/facteur bench/smtp-profile.sh
#
# Prints the ingest rate and perf's top entries (self time, then children); the perf data stays
# in bench/out/profile-DATE/ for `perf report -i`. Needs perf, smtp-source (postfix) and dnsmasq.
# Every process it starts is stopped by PID on exit.
set -euo pipefail
main() {
cd "$(dirname "$0")/.."
ROOT=$PWD
SESSIONS=${SESSIONS:-10}
MESSAGES=${MESSAGES:-5000}
SIZE=${SIZE:-4096}
FACTEUR_BIN=${FACTEUR_BIN:-$ROOT/target/release/facteur}
RUN=$ROOT/bench/out/profile-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$RUN/data"
PY="python3 $ROOT/bench/lib/peerbench.py"
DNS_PID="" F_PID="" PERF_PID=""
cleanup() {
  set +e
  [ -n "$PERF_PID" ] && kill -INT "$PERF_PID" 2>/dev/null && wait "$PERF_PID" 2>/dev/null
  [ -n "$F_PID" ] && kill "$F_PID" 2>/dev/null && wait "$F_PID" 2>/dev/null
  [ -n "$DNS_PID" ] && kill "$DNS_PID" 2>/dev/null && wait "$DNS_PID" 2>/dev/null
  rm -rf "$RUN/data"
}
trap cleanup EXIT
[ -x "$FACTEUR_BIN" ] || cargo build --release -q -p facteur

DNS_PORT=$($PY freeports 1)
dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --listen-address=127.0.0.1 \
  --bind-interfaces --port="$DNS_PORT" --pid-file= --log-facility=/dev/null --local-ttl=300 \
    --auth-server=ns.test,127.0.0.1 --auth-zone=test,127.0.0.0/8 --auth-ttl=300 \
  --txt-record=example.test,"v=spf1 ip4:127.0.0.1 -all" \
  --txt-record=_dmarc.example.test,"v=DMARC1; p=reject" &
# (Authoritative for test., with TTLs and an SOA in negative answers, as real zones are: resolvers
# cache answers and NXDOMAINs such as the _dmarc.test that DMARC asks for each message.)
DNS_PID=$!

cat >"$RUN/data/facteur.toml" <<TOML
[server]
hostname = "mx.bench.test"
primary_domain = "bench.test"
[listeners]
smtp = ["127.0.0.1:0"]
submission = []
submissions = []
imap = []
imaps = []
pop3 = []
pop3s = []
[smtp]
inbound_auth = true
[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]
[log]
level = "warn"
TOML
"$FACTEUR_BIN" --data "$RUN/data" serve --domain bench.test >"$RUN/stdout" 2>"$RUN/stderr" &
F_PID=$!
for _ in $(seq 600); do grep -q '^Ready\.' "$RUN/stdout" 2>/dev/null && break; sleep 0.05; done
grep -q '^Ready\.' "$RUN/stdout" || { cat "$RUN/stderr" >&2; exit 1; }
SMTP=$(awk '$1 == "smtp" {print $2}' "$RUN/stdout")
"$FACTEUR_BIN" --data "$RUN/data" account add ingest@bench.test >/dev/null

perf record ${PERF_CALLGRAPH:--g} -F ${PERF_FREQ:-999} -p "$F_PID" -o "$RUN/perf.data" 2>"$RUN/perf.log" &
PERF_PID=$!
sleep 1
cpu() { awk '{print $14 + $15}' "/proc/$F_PID/stat"; }   # utime + stime, in clock ticks
c0=$(cpu)
t0=$(date +%s.%N)
smtp-source -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" -f sender@example.test -t ingest@bench.test "$SMTP"
t1=$(date +%s.%N)
c1=$(cpu)
kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true; PERF_PID=""
stored=$("$FACTEUR_BIN" --data "$RUN/data" --json check-store | python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"])')
python3 -c "print(f'ingest: {$stored} of $MESSAGES stored, {$stored/($t1-$t0):.0f} msg/s ($SESSIONS sessions, $SIZE bytes, checks on); Facteur CPU {($c1-$c0)*1000/$(getconf CLK_TCK)/$stored:.2f} ms per message')"
grep -m1 -o 'dmarc=[a-z]*' "$RUN/stderr" || true
echo "--- perf: self time (top 40)"
perf report -i "$RUN/perf.data" --no-children --stdio -g none --sort dso,sym 2>/dev/null | grep -v '^#' | grep '%' | head -40
echo "--- perf: with children (top 40)"
perf report -i "$RUN/perf.data" --children --stdio -g none --sort sym 2>/dev/null | grep -v '^#' | grep -E '^ +[0-9]' | head -40
echo "perf data: $RUN/perf.data"
}
main "$@"; exit
