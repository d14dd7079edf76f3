#!/usr/bin/env bash
# Facteur against Postfix + Dovecot on this machine: SMTP ingest end to end, IMAP on a large
# mailbox, POP3 RETR, memory per idle IMAP session, RSS at rest and start-up time.
#
#   bench/run-peers.sh                 # full run (a few minutes)
#   QUICK=1 bench/run-peers.sh         # smaller counts, for a quick check
#
# Knobs (environment): QUICK=1; SMTP_MESSAGES (5000, QUICK 500); SMTP_SESSIONS ("1 20") and
# SMTP_SIZES ("4096 102400") for the SMTP rows; INBOUND_AUTH=1 turns Facteur's SPF/DKIM/DMARC/ARC
# checks on, answered by a dnsmasq on loopback that publishes SPF and DMARC (p=reject) for the
# sender's domain, as a user runs it (Postfix checks nothing in either case); IMAP_MESSAGES (10000, QUICK 2000);
# BIG_IMAP=1 adds a 100,000-message mailbox; POP3_MESSAGES (5000, QUICK 1000); IDLE_CONNS (1000,
# QUICK 200); BIG_IDLE=1 adds 10,000 idle sessions; RUNS (3: IMAP and POP3 report the median);
# STORE_MESSAGES (5000) for Facteur's store_append; WORKLOADS ("smtp imap pop3 idle store": a subset
# runs only those); APPEND_DOC=0 to leave docs/benchmarks.md alone; KEEP=1 to keep the run's mail and
# queues under bench/out/; FACTEUR_BIN (target/release/facteur) to measure another build.
# Documented in docs/benchmarks.md, section "Peers".
#
# Installs postfix and dovecot from Debian when missing (bench/lib/install-peers.sh). The peers run as
# their own instances from bench/peers/ rendered into bench/out/peers-DATE/, on free loopback ports,
# and are stopped on exit by PID. Nothing touches the system Postfix or Dovecot.
set -euo pipefail
# The whole script is one function, read in full before it runs, so editing the file during a run
# cannot derail that run.
main() {
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then d_smtp=500 d_imap=2000 d_pop=1000 d_idle=200; else d_smtp=5000 d_imap=10000 d_pop=5000 d_idle=1000; fi
SMTP_MESSAGES=${SMTP_MESSAGES:-$d_smtp}
IMAP_MESSAGES=${IMAP_MESSAGES:-$d_imap}
POP3_MESSAGES=${POP3_MESSAGES:-$d_pop}
IDLE_CONNS=${IDLE_CONNS:-$d_idle}
BIG_IMAP=${BIG_IMAP:-0}
BIG_IDLE=${BIG_IDLE:-0}
RUNS=${RUNS:-3}
SMTP_SESSIONS=${SMTP_SESSIONS:-1 20}
SMTP_SIZES=${SMTP_SIZES:-4096 102400}
INBOUND_AUTH=${INBOUND_AUTH:-0}
STORE_MESSAGES=${STORE_MESSAGES:-5000}
WORKLOADS=${WORKLOADS:-smtp imap pop3 idle store}
APPEND_DOC=${APPEND_DOC:-1}
KEEP=${KEEP:-0}
RARE_WORD=zanzibarquux
RARE_COUNT=5
# Strong enough for facteur's password policy (auth.min_password_score), so accounts are created.
PASS=bench-Quokka-lantern-73

PY="python3 $ROOT/bench/lib/peerbench.py"
STAMP=$(date -u +%Y%m%d-%H%M%S)
RUN=$ROOT/bench/out/peers-$STAMP
mkdir -p "$RUN"
RESULTS=$RUN/results.md     # table rows
: >"$RESULTS"
want() { [[ " $WORKLOADS " == *" $1 "* ]]; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ------------------------------------------------------------------ install
"$ROOT/bench/lib/install-peers.sh"
command -v smtp-source >/dev/null || { echo "smtp-source missing" >&2; exit 1; }

# ------------------------------------------------------------------ lifecycle
PF_CONF=$RUN/postfix/etc
DC_CONF=$RUN/dovecot/dovecot.conf
PF_STARTED=0
DC_STARTED=0
PF_PID=""
DC_PID=""

DNS_PID=""
stop_peers() {
  set +e
  stop_facteur
  if [ -n "$DNS_PID" ]; then kill "$DNS_PID" 2>/dev/null; wait "$DNS_PID" 2>/dev/null; DNS_PID=""; fi
  if [ "$PF_STARTED" = 1 ]; then
    postfix -c "$PF_CONF" stop >/dev/null 2>&1
    # postfix stop signals the master and returns; wait for that PID to be gone.
    for _ in $(seq 50); do [ -n "$PF_PID" ] && kill -0 "$PF_PID" 2>/dev/null || break; sleep 0.1; done
    PF_STARTED=0
  fi
  if [ "$DC_STARTED" = 1 ]; then
    doveadm -c "$DC_CONF" stop >/dev/null 2>&1 || { [ -n "$DC_PID" ] && kill "$DC_PID"; }
    for _ in $(seq 50); do [ -n "$DC_PID" ] && kill -0 "$DC_PID" 2>/dev/null || break; sleep 0.1; done
    DC_STARTED=0
  fi
  if [ "$KEEP" != 1 ]; then rm -rf "$RUN/mail" "$RUN/postfix/spool" "$RUN/store"; fi
}
trap stop_peers EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ configure
read -r SMTP_PORT LMTP_PORT IMAP_PORT IMAPS_PORT POP3_PORT POP3S_PORT <<<"$($PY freeports 6)"
MAX_IDLE=$IDLE_CONNS
[ "$BIG_IDLE" = 1 ] && MAX_IDLE=10000
PROCS=$((MAX_IDLE + 200))
CLIENTS=$((2 * MAX_IDLE + 1000))
AUTH_CLIENTS=$((4 * PROCS + 100))
MAIL_UID=$(id -u nobody)
MAIL_GID=$(id -g nobody)

render() { # template destination
  sed -e "s|@RUN@|$RUN|g" -e "s|@SMTP_PORT@|$SMTP_PORT|g" -e "s|@LMTP_PORT@|$LMTP_PORT|g" \
      -e "s|@IMAP_PORT@|$IMAP_PORT|g" -e "s|@IMAPS_PORT@|$IMAPS_PORT|g" -e "s|@POP3_PORT@|$POP3_PORT|g" -e "s|@POP3S_PORT@|$POP3S_PORT|g" -e "s|@PROCS@|$PROCS|g" \
      -e "s|@CLIENTS@|$CLIENTS|g" -e "s|@AUTH_CLIENTS@|$AUTH_CLIENTS|g" -e "s|@CONNS@|$MAX_IDLE|g" -e "s|@MAIL_UID@|$MAIL_UID|g" \
      -e "s|@MAIL_GID@|$MAIL_GID|g" "$1" >"$2"
}
mkdir -p "$PF_CONF" "$RUN/postfix/spool" "$RUN/postfix/data" "$RUN/dovecot/run" "$RUN/dovecot/state" "$RUN/mail"
render "$ROOT/bench/peers/postfix/main.cf" "$PF_CONF/main.cf"
render "$ROOT/bench/peers/postfix/master.cf" "$PF_CONF/master.cf"
render "$ROOT/bench/peers/dovecot/dovecot.conf" "$DC_CONF"
# Dovecot's IMAP and POP3 over TLS (imaps, pop3s) use a self-signed certificate, as Facteur does.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
  -keyout "$RUN/dovecot/key.pem" -out "$RUN/dovecot/cert.pem" >/dev/null 2>&1
# Logins used by the IMAP, POP3 and idle workloads (LMTP delivery needs no entry: static userdb).
for u in imap10k imap100k pop3 idle; do echo "$u:{PLAIN}$PASS"; done >"$RUN/dovecot/users"
chmod 0640 "$RUN/dovecot/users"; chgrp dovecot "$RUN/dovecot/users"
chown "$MAIL_UID:$MAIL_GID" "$RUN/mail"
chown postfix "$RUN/postfix/data"
pf_fail() { echo "postfix $1 failed; its log:" >&2; tail -20 "$RUN/postfix/maillog" >&2 2>/dev/null; exit 1; }
# check creates the queue folders with Postfix's own owners and modes.
postfix -c "$PF_CONF" check || pf_fail check
doveconf -c "$DC_CONF" -n >/dev/null

# Raise the descriptor limit for the peers and the idle client (as far as the hard limit allows).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ------------------------------------------------------------------ row helpers
row() { # workload facteur peer ratio
  printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" >>"$RESULTS"
  printf '  %-58s facteur: %-10s peer: %s\n' "$1" "$2" "$3" >&2
}
val() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }
fmt() { printf "%'d" "$1" 2>/dev/null || echo "$1"; }
NOT_YET="not yet"

# One function per workload for Facteur; each echoes its figure as a bare number in the peer row's
# unit (s, MiB, msg/s, KiB per session), or "not yet" while Facteur does not serve the protocol.
# Filling these in is all that adding Facteur's column takes: the peer runs, the table and the ratio
# column stay as they are (ratio: Facteur / peer for rates, peer / Facteur for times and memory, so
# above 1 means Facteur does better).
FACTEUR_BIN=${FACTEUR_BIN:-$ROOT/target/release/facteur}
F_DATA=$RUN/facteur
F_PID=""
# With INBOUND_AUTH=1: a dnsmasq on a free loopback port answers the inbound checks' lookups.
DNS_SECTION='[dns]
nameservers = ["127.0.0.1:9"]'
if [ "$INBOUND_AUTH" = 1 ]; then
  DNS_PORT=$($PY freeports 1)
  dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --listen-address=127.0.0.1 \
    --bind-interfaces --port="$DNS_PORT" --pid-file= --log-facility=/dev/null --local-ttl=300 \
    --auth-server=ns.test,127.0.0.1 --auth-zone=test,127.0.0.0/8 --auth-ttl=300 \
    --txt-record=example.test,"v=spf1 ip4:127.0.0.1 -all" \
    --txt-record=_dmarc.example.test,"v=DMARC1; p=reject" &
  # (Authoritative for test., with TTLs and an SOA in negative answers, as real zones are: resolvers
# cache answers and NXDOMAINs such as the _dmarc.test that DMARC asks for each message.)
  DNS_PID=$!
  DNS_SECTION="[dns]
nameservers = [\"127.0.0.1:$DNS_PORT\"]"
fi
F_UP=""
F_SMTP=""
start_facteur() { # starts Facteur on its own data folder, free loopback ports; sets F_PID F_UP F_SMTP
  rm -rf "$F_DATA"; mkdir -p "$F_DATA"
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
imaps = ["127.0.0.1:0"]
pop3 = []
pop3s = ["127.0.0.1:0"]
[smtp]
# Postfix checks no SPF/DKIM/DMARC in this setup; INBOUND_AUTH=1 turns Facteur's checks on (against
# the loopback dnsmasq). The bench never queries outside DNS.
inbound_auth = $([ "$INBOUND_AUTH" = 1 ] && echo true || echo false)
$DNS_SECTION
[limits]
# The idle workload opens thousands of sessions from one address.
max_connections = 20000
max_connections_per_ip = 20000
max_connections_per_user = 20000
[log]
level = "warn"
TOML
  local t0; t0=$(date +%s.%N)
  "$FACTEUR_BIN" --data "$F_DATA" serve --domain bench.test >"$F_DATA/stdout" 2>"$F_DATA/stderr" &
  F_PID=$!
  for _ in $(seq 600); do grep -q '^Ready\.' "$F_DATA/stdout" 2>/dev/null && break; sleep 0.05; done
  grep -q '^Ready\.' "$F_DATA/stdout" || { echo "Facteur did not start:" >&2; cat "$F_DATA/stderr" >&2; return 1; }
  F_UP=$(python3 -c "import time;print(f'{time.time()-$t0:.2f}')")
  F_SMTP=$(awk '$1 == "smtp" {print $2}' "$F_DATA/stdout")
  F_IMAPS=$(awk '$1 == "imaps" {print $2}' "$F_DATA/stdout")
  F_POP3S=$(awk '$1 == "pop3s" {print $2}' "$F_DATA/stdout")
}
stop_facteur() { [ -n "$F_PID" ] && kill "$F_PID" 2>/dev/null && wait "$F_PID" 2>/dev/null; F_PID=""; }
f_messages() { "$FACTEUR_BIN" --data "$F_DATA" --json check-store | python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"])'; }
facteur_startup() { echo "${F_UP:-$NOT_YET}"; }
facteur_rest_rss() { # MiB
  [ -n "$F_PID" ] || { echo "$NOT_YET"; return; }
  echo $(( $(val rss_kib "$($PY rss "$F_PID")") / 1024 ))
}
facteur_smtp_ingest() { # args: sessions messages size_bytes. Facteur's 250 means stored durably in
  # the mailbox, so the time smtp-source takes is the time to durable storage; the count is checked.
  [ -n "$F_SMTP" ] || { echo "$NOT_YET"; return; }
  local before after t0 t1
  "$FACTEUR_BIN" --data "$F_DATA" account add "ingest$1x$3@bench.test" >/dev/null 2>&1 || true
  before=$(f_messages)
  t0=$(date +%s.%N)
  smtp-source -s "$1" -m "$2" -l "$3" -f sender@example.test -t "ingest$1x$3@bench.test" "$F_SMTP" >/dev/null 2>&1 || { echo "FAILED"; return; }
  t1=$(date +%s.%N)
  after=$(f_messages)
  python3 -c "n=$after-$before; print(f'{n/($t1-$t0):.0f}' if n >= $2 else 'FAILED (stored {n} of $2)')"
}
facteur_imap() { # args: messages; echoes select_fetch=S fetch_body=S search=S search_header=S sort=S store=S
  [ -n "$F_IMAPS" ] || { echo "$NOT_YET"; return; }
  local user="imap$1@bench.test" port=${F_IMAPS##*:}
  printf '%s' "$PASS" | "$FACTEUR_BIN" --data "$F_DATA" account add "$user" --password-stdin >/dev/null 2>&1
  IMAP_SSL=1 $PY fill-imap "$port" "$user" "$PASS" "$1" 4096 "$RARE_WORD" "$RARE_COUNT" >/dev/null || { echo "FAILED"; return; }
  IMAP_SSL=1 $PY imap "$port" "$user" "$PASS" "$1" "$RARE_WORD" "$RARE_COUNT" "$RUNS" || echo "FAILED"
}
facteur_pop3() { # args: messages; echoes msg/s of RETR of all (over 995)
  [ -n "$F_POP3S" ] && [ -n "$F_IMAPS" ] || { echo "$NOT_YET"; return; }
  local user="pop$1@bench.test" r
  printf '%s' "$PASS" | "$FACTEUR_BIN" --data "$F_DATA" account add "$user" --password-stdin >/dev/null 2>&1
  IMAP_SSL=1 $PY fill-imap "${F_IMAPS##*:}" "$user" "$PASS" "$1" 4096 none 0 >/dev/null || { echo "FAILED"; return; }
  r=$(POP3_SSL=1 $PY pop3 "${F_POP3S##*:}" "$user" "$PASS" "$1" "$RUNS") || { echo "FAILED"; return; }
  val rate "$r"
}
facteur_idle_mem() { # args: connections; echoes KiB of RSS per session (total RSS / sessions held),
  # then the sessions held and failed in parentheses
  [ -n "$F_IMAPS" ] && [ -n "$F_PID" ] || { echo "$NOT_YET"; return; }
  local user="idle@bench.test" port=${F_IMAPS##*:} r held
  if [ -z "${F_IDLE_FILLED:-}" ]; then
    printf '%s' "$PASS" | "$FACTEUR_BIN" --data "$F_DATA" account add "$user" --password-stdin >/dev/null 2>&1
    IMAP_SSL=1 $PY fill-imap "$port" "$user" "$PASS" 100 4096 none 0 >/dev/null || { echo "FAILED"; return; }
    F_IDLE_FILLED=1
  fi
  r=$(IMAP_SSL=1 $PY idle "$port" "$user" "$PASS" "$1" "$F_PID") || { echo "FAILED"; return; }
  held=$(val held "$r")
  if [ -n "$held" ] && [ "$held" -gt 0 ]; then
    echo "$(( $(val rss_kib "$r") / held )) ($held held, $(val failed "$r") failed, $(val setup_seconds "$r") s to set up)"
  else echo "FAILED ($r)"; fi
}
ratio() { # facteur peer [higher-is-better: 1|0]
  if [[ "$1" =~ ^[0-9.]+$ && "$2" =~ ^[0-9.]+$ ]]; then
    python3 -c "f,p,h=float('$1'),float('$2'),'${3:-1}'=='1'; print(f'{(f/p if h else p/f):.2f}')"
  else echo "n/a"; fi
}

# ------------------------------------------------------------------ start-up and rest
log "starting Postfix (SMTP 127.0.0.1:$SMTP_PORT) and Dovecot (LMTP $LMTP_PORT, IMAP $IMAP_PORT, IMAPS $IMAPS_PORT, POP3 $POP3_PORT) from $RUN"
t0=$(date +%s.%N)
DC_STARTED=1
dovecot -c "$DC_CONF"
$PY waitport "$IMAP_PORT" 30 >/dev/null
DC_UP=$(python3 -c "import time;print(f'{time.time()-$t0:.2f}')")
DC_PID=$(cat "$RUN/dovecot/run/master.pid")
$PY waitport "$POP3_PORT" 10 >/dev/null
$PY waitport "$LMTP_PORT" 10 >/dev/null
t0=$(date +%s.%N)
PF_STARTED=1
postfix -c "$PF_CONF" start || pf_fail start
$PY waitport "$SMTP_PORT" 30 >/dev/null
PF_UP=$(python3 -c "import time;print(f'{time.time()-$t0:.2f}')")
PF_PID=$(tr -d ' ' <"$RUN/postfix/spool/pid/master.pid")
log "Dovecot up in ${DC_UP}s (pid $DC_PID), Postfix up in ${PF_UP}s (pid $PF_PID)"
if [ -x "$FACTEUR_BIN" ] || (cd "$ROOT" && cargo build --release -q -p facteur); then
  start_facteur || F_PID=""
  log "Facteur up in ${F_UP}s (pid $F_PID, SMTP $F_SMTP)"
fi
sleep 2
rest_pf=$($PY rss "$PF_PID")
rest_dc=$($PY rss "$DC_PID")
row "start-up to first greeting, s (Postfix / Dovecot)" "$(facteur_startup)" "$PF_UP / $DC_UP" "n/a"
row "RSS at rest, MiB (Postfix $(val procs "$rest_pf") procs / Dovecot $(val procs "$rest_dc") procs)" "$(facteur_rest_rss)" \
  "$(( $(val rss_kib "$rest_pf") / 1024 )) / $(( $(val rss_kib "$rest_dc") / 1024 ))" "n/a"

# ------------------------------------------------------------------ SMTP ingest
want smtp && for size in $SMTP_SIZES; do
  for sessions in $SMTP_SESSIONS; do
    user="ingest-s$sessions-$((size / 1024))k"
    timeout=$((SMTP_MESSAGES / 5 + 120))
    log "SMTP ingest: $SMTP_MESSAGES x $((size / 1024)) KiB, $sessions session(s)"
    r=$($PY smtp-ingest "$SMTP_PORT" "$sessions" "$SMTP_MESSAGES" "$size" "$user@bench.test" "$RUN/mail/$user/Maildir" "$timeout") || r="ok=0"
    if [ "$(val ok "$r")" = 1 ]; then peer="$(val rate "$r") msg/s ($(val seconds "$r") s)"; else peer="FAILED ($r)"; fi
    f=$(facteur_smtp_ingest "$sessions" "$SMTP_MESSAGES" "$size")
    checks=""; [ "$INBOUND_AUTH" = 1 ] && checks=", Facteur with SPF/DKIM/DMARC checks"
    row "SMTP ingest to Maildir, $(fmt "$SMTP_MESSAGES") x $((size / 1024)) KiB, $sessions session(s)$checks" "$f" "$peer" "$(ratio "$f" "$(val rate "$r")")"
  done
done

# ------------------------------------------------------------------ IMAP
fill() { # user messages [word count]
  local dir=$RUN/mail/$1/Maildir
  log "filling $1 with $(fmt "$2") messages"
  $PY fill-maildir "$dir" "$2" 4096 "${3:-none}" "${4:-0}" >/dev/null
  chown -R "$MAIL_UID:$MAIL_GID" "$RUN/mail/$1"
  doveadm -c "$DC_CONF" force-resync -u "$1" INBOX
}
imap_sizes=("$IMAP_MESSAGES:imap10k")
[ "$BIG_IMAP" = 1 ] && imap_sizes+=("100000:imap100k")
want imap && for spec in "${imap_sizes[@]}"; do
  n=${spec%%:*} user=${spec#*:}
  fill "$user" "$n" "$RARE_WORD" "$RARE_COUNT"
  log "IMAP on $(fmt "$n") messages, median of $RUNS"
  # Facteur only logs in over TLS (993), so the ratio is against Dovecot over imaps too; Dovecot
  # over plaintext (143) is shown beside it for what TLS costs.
  rs=$(IMAP_SSL=1 $PY imap "$IMAPS_PORT" "$user" "$PASS" "$n" "$RARE_WORD" "$RARE_COUNT" "$RUNS") || rs="failed"
  r=$($PY imap "$IMAP_PORT" "$user" "$PASS" "$n" "$RARE_WORD" "$RARE_COUNT" "$RUNS") || r="failed"
  f=$(facteur_imap "$n")
  for k in select_fetch fetch_body search search_header sort store; do
    case $k in
      select_fetch) what="SELECT + UID FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE)" ;;
      fetch_body) what="FETCH 1:* BODY.PEEK[]" ;;
      search) what="SEARCH BODY <rare word> ($RARE_COUNT hits)" ;;
      search_header) what="SEARCH FROM <one correspondent> (1 message in 97)" ;;
      sort) what="SORT (SUBJECT) UTF-8 ALL" ;;
      store) what='STORE 1:* +FLAGS (\Seen)' ;;
    esac
    ps=$(val "$k" "$rs"); p=$(val "$k" "$r"); fk=$(val "$k" "$f"); [ -z "$fk" ] && fk=$f
    row "IMAP $what, $(fmt "$n") msgs, s, both over TLS" "$fk" "${ps:-FAILED} (plaintext ${p:-FAILED})" "$(ratio "$fk" "$ps" 0)"
  done
done

# ------------------------------------------------------------------ POP3
if want pop3; then
fill pop3 "$POP3_MESSAGES"
log "POP3 RETR of $(fmt "$POP3_MESSAGES") messages, median of $RUNS"
# Facteur only logs in over TLS (port 995), so the like-for-like row has Dovecot over pop3s too;
# the row with Dovecot over plaintext shows what TLS costs the client.
r=$($PY pop3 "$POP3_PORT" pop3 "$PASS" "$POP3_MESSAGES" "$RUNS") || r="failed"
rs=$(POP3_SSL=1 $PY pop3 "$POP3S_PORT" pop3 "$PASS" "$POP3_MESSAGES" "$RUNS") || rs="failed"
f=$(facteur_pop3 "$POP3_MESSAGES")
row "POP3 RETR of all, $(fmt "$POP3_MESSAGES") x 4 KiB, both over TLS (995)" "$f" "$(val rate "$rs") msg/s ($(val seconds "$rs") s)" "$(ratio "$f" "$(val rate "$rs")")"
row "POP3 RETR of all, $(fmt "$POP3_MESSAGES") x 4 KiB, Dovecot over plaintext (110)" "$f" "$(val rate "$r") msg/s ($(val seconds "$r") s)" "$(ratio "$f" "$(val rate "$r")")"
fi

# ------------------------------------------------------------------ idle IMAP sessions
idle_counts=("$IDLE_CONNS")
[ "$BIG_IDLE" = 1 ] && [ "$IDLE_CONNS" != 10000 ] && idle_counts+=(10000)
want idle && fill idle 100
want idle && for n in "${idle_counts[@]}"; do
  log "idle IMAP: $(fmt "$n") sessions LOGIN, SELECT, IDLE"
  base=$($PY rss "$DC_PID")
  r=$($PY idle "$IMAP_PORT" idle "$PASS" "$n" "$DC_PID") || r="failed"
  held=$(val held "$r")
  f=$(facteur_idle_mem "$n")
  if [ -n "$held" ] && [ "$held" -gt 0 ]; then
    per=$(( $(val rss_kib "$r") / held ))
    delta=$(( ($(val rss_kib "$r") - $(val rss_kib "$base")) / held ))
    pss=$(( $(val pss_kib "$r") / held ))
    peer="$per KiB RSS/session (delta over rest $delta, PSS $pss; $held held, $(val failed "$r") failed, $(val procs "$r") procs)"
  else
    peer="FAILED ($r)"; per=""; pss=""
  fi
  # Ratios against Dovecot's RSS and its PSS per session (its imap processes share their code
  # pages, which RSS counts once per process): above 1, Facteur uses less.
  fk=${f%% *}
  row "memory per idle IMAP session, KiB, $(fmt "$n") sessions" "$f" "$peer" \
    "$(ratio "$fk" "$per" 0) (RSS), $(ratio "$fk" "$pss" 0) (PSS)"
  sleep 3
done

# ------------------------------------------------------------------ Facteur's store
want store && log "Facteur store_append $STORE_MESSAGES"
STORE_OUT=$RUN/store_append.txt
if ! want store; then
  echo "(not run: WORKLOADS=$WORKLOADS)" >"$STORE_OUT"
elif cargo build --release -q -p facteur-bench >"$RUN/cargo.log" 2>&1; then
  mkdir -p "$RUN/store"
  ./target/release/store_append "$STORE_MESSAGES" "$RUN/store" >"$STORE_OUT" 2>&1 || echo "store_append failed" >>"$STORE_OUT"
else
  { echo "cargo build -p facteur-bench failed:"; tail -20 "$RUN/cargo.log"; } >"$STORE_OUT"
fi

# ------------------------------------------------------------------ report
MACHINE="$(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(df -T "$RUN" | awk 'NR==2{print $2}') on $(df "$RUN" | awk 'NR==2{print $1}'); $(postconf -c "$PF_CONF" -h mail_version | sed 's/^/Postfix /'), Dovecot $(dovecot --version | cut -d' ' -f1)"
PARAMS="QUICK=$QUICK SMTP_MESSAGES=$SMTP_MESSAGES SMTP_SESSIONS='$SMTP_SESSIONS' SMTP_SIZES='$SMTP_SIZES' INBOUND_AUTH=$INBOUND_AUTH IMAP_MESSAGES=$IMAP_MESSAGES BIG_IMAP=$BIG_IMAP POP3_MESSAGES=$POP3_MESSAGES IDLE_CONNS=$IDLE_CONNS BIG_IDLE=$BIG_IDLE RUNS=$RUNS WORKLOADS='$WORKLOADS'"
REPORT=$RUN/report.md
{
  echo "## Peers (bench/run-peers.sh) — run of $(date -u +%Y-%m-%d)"
  echo
  echo "Machine: $MACHINE."
  echo "Parameters: \`$PARAMS\`."
  echo
  echo "| workload | Facteur | Postfix + Dovecot | ratio |"
  echo "|---|---|---|---|"
  cat "$RESULTS"
  echo
  echo "Facteur's store benchmark in the same run (\`store_append $STORE_MESSAGES\`):"
  echo
  sed 's/^/    /' "$STORE_OUT"
  echo
} >"$REPORT"
echo
cat "$REPORT"
if [ "$APPEND_DOC" = 1 ]; then
  { echo; cat "$REPORT"; } >>"$ROOT/docs/benchmarks.md"
  log "appended to docs/benchmarks.md"
fi
log "run folder: $RUN"
}
main "$@"; exit
