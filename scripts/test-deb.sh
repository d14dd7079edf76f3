#!/usr/bin/env bash
# The Debian package, end to end: build it with cargo-deb, install it with dpkg, check the systemd
# unit with systemd-analyze verify (these machines do not boot systemd), do the documented first
# start as root (it must switch to the `facteur` user), run the installed binary as `facteur` on
# loopback ports, send a message with swaks, read it back with Python's imaplib, then purge the
# package and remove what purging keeps (the data folder, the user).
#
# Run as root on a machine where Facteur is not installed (CI's is one). Called by scripts/test.sh.
#
#   scripts/test-deb.sh            # package of the dev profile (fast: reuses the test build)
#   scripts/test-deb.sh --release  # the real package: `cargo deb -p facteur` (release build)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

CARGO_DEB_VERSION=3.8.0
DOMAIN=example.test
DATA=/var/lib/facteur
PROFILE=dev
[ "${1:-}" = "--release" ] && PROFILE=release

# Most waits for dpkg's lock (another apt or dpkg on the machine), in 2-second steps.
DPKG_LOCK_TRIES=90

fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }
# dpkg ARGS, output in $WORK/dpkg.log, retried while another process holds dpkg's lock.
dpkg_locked() {
  local i
  for i in $(seq "$DPKG_LOCK_TRIES"); do
    if dpkg "$@" >"$WORK/dpkg.log" 2>&1; then return 0; fi
    grep -q "lock" "$WORK/dpkg.log" || return 1
    sleep 2
  done
  return 1
}
step() { echo "test-deb: $*"; }

[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i, adduser)"
if dpkg -s facteur >/dev/null 2>&1 || [ -e "$DATA" ] || getent passwd facteur >/dev/null; then
  fail "facteur is already installed here (package, $DATA or user): this test installs and purges it"
fi

if [ "$(cargo deb --version 2>/dev/null || true)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
  step "installing cargo-deb $CARGO_DEB_VERSION"
  cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION"
fi

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if dpkg -s facteur >/dev/null 2>&1; then dpkg_locked --purge facteur || true; fi
  # What purging keeps on purpose (the mail): this test made it, so it goes.
  rm -rf "$DATA"
  if getent passwd facteur >/dev/null; then deluser --system facteur >/dev/null 2>&1 || userdel facteur || true; fi
  if getent group facteur >/dev/null; then delgroup --system facteur >/dev/null 2>&1 || groupdel facteur || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- Build ----------------------------------------------------------------------------------------
T0=$(date +%s)
if [ "$PROFILE" = release ]; then
  cargo deb -p facteur --output "$WORK/"
else
  # The dev build the tests already made; cargo-deb packages it as it would a release build.
  cargo build -q -p facteur
  cargo deb -p facteur --profile dev --no-build --fast --output "$WORK/"
fi
DEB=$(ls "$WORK"/facteur_*.deb)
step "built $(basename "$DEB") ($PROFILE profile) in $(( $(date +%s) - T0 )) s"

# --- Install --------------------------------------------------------------------------------------
dpkg_locked -i "$DEB" || { cat "$WORK/dpkg.log"; fail "dpkg -i"; }
cp "$WORK/dpkg.log" "$WORK/install.log"
[ -x /usr/bin/facteur ] || fail "/usr/bin/facteur not installed"
getent passwd facteur >/dev/null || fail "no facteur user after install"
FUID=$(id -u facteur); FGID=$(id -g facteur)
[ "$(stat -c '%a %U %G' "$DATA")" = "700 facteur facteur" ] || fail "$DATA is $(stat -c '%a %U %G' "$DATA")"
grep -q "facteur --data /var/lib/facteur serve --init-only" "$WORK/install.log" || fail "no first-start hint from postinst"

UNIT=$(dpkg -L facteur | grep '/facteur\.service$' | head -n1)
[ -n "$UNIT" ] || fail "the package has no facteur.service"
# verify exits 0 on unknown keys and bad values too (it only warns): any output is a failure.
VERIFY=$(systemd-analyze verify "$UNIT" 2>&1) || fail "systemd-analyze verify: $VERIFY"
[ -z "$VERIFY" ] || fail "systemd-analyze verify $UNIT: $VERIFY"
for key in "User=facteur" "ProtectSystem=strict" "ReadWritePaths=/var/lib/facteur" "NoNewPrivileges=yes" \
           "CapabilityBoundingSet=CAP_NET_BIND_SERVICE" "AmbientCapabilities=CAP_NET_BIND_SERVICE" \
           "ExecReload=/bin/kill -HUP \$MAINPID" "SystemCallFilter=@system-service"; do
  grep -qxF "$key" "$UNIT" || fail "$UNIT lacks $key"
done
step "installed; $UNIT verified"

# --- First start as root, as docs/operations.md says; it must switch to facteur ------------------
# Listeners on free loopback ports and no outside DNS: written before the first start, as an admin
# who edits the config first would.
install -o facteur -g facteur -m 0600 /dev/stdin "$DATA/facteur.toml" <<TOML
[server]
hostname = "mx.$DOMAIN"
primary_domain = "$DOMAIN"
[listeners]
smtp = ["127.0.0.1:0"]
submission = ["127.0.0.1:0"]
submissions = []
imap = ["127.0.0.1:0"]
imaps = []
pop3 = []
pop3s = []
[smtp]
inbound_auth = false
[dns]
nameservers = ["127.0.0.1:9"]
[auth]
argon2_memory_kib = 1024
argon2_iterations = 1
TOML
/usr/bin/facteur --data "$DATA" serve --init-only --domain "$DOMAIN" >"$WORK/init.out" 2>&1 \
  || { cat "$WORK/init.out"; fail "first start as root"; }
ROOT_OWNED=$(find "$DATA" ! -user facteur -printf '%p\n')
[ -z "$ROOT_OWNED" ] || fail "first start as root left files not owned by facteur: $ROOT_OWNED"
OPEN=$(find "$DATA" ! -type l -perm /077 -printf '%m %p\n')
[ -z "$OPEN" ] || fail "readable by others: $OPEN"
echo "alice-password-1" | /usr/bin/facteur --data "$DATA" account add "alice@$DOMAIN" --password-stdin >/dev/null

# --- The installed binary as the facteur user ----------------------------------------------------
# As systemd's User=facteur would: setpriv executes the binary in place, so $! is the server.
setpriv --reuid=facteur --regid=facteur --init-groups -- /usr/bin/facteur --data "$DATA" serve \
  >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER_PID=$!
for _ in $(seq 300); do grep -q '^Ready\.' "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^Ready\.' "$WORK/serve.out" || { cat "$WORK/serve.out" "$WORK/serve.err"; fail "server not ready"; }
UIDS=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$SERVER_PID/status")
[ "$UIDS" = "$FUID $FUID $FUID $FUID" ] || fail "server runs with uids $UIDS, not facteur's ($FUID)"
SMTP=$(awk '$1 == "smtp" {print $2}' "$WORK/serve.out")
IMAP=$(awk '$1 == "imap" {print $2}' "$WORK/serve.out")
[ -n "$SMTP" ] && [ -n "$IMAP" ] || fail "no smtp/imap address in: $(cat "$WORK/serve.out")"

swaks --server "${SMTP%:*}" --port "${SMTP##*:}" --ehlo client.test --from sender@far.test \
  --to "alice@$DOMAIN" --header "Subject: packaged" --body "delivered by the installed package" \
  >"$WORK/swaks.log" 2>&1 || { cat "$WORK/swaks.log"; fail "swaks"; }

python3 - "${IMAP%:*}" "${IMAP##*:}" "alice@$DOMAIN" <<'PY' || fail "reading the message back over IMAP"
import imaplib, ssl, sys, time
host, port, user = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
deadline = time.time() + 30
while True:
    m = imaplib.IMAP4(host, port)
    m.starttls(ssl_context=ctx)
    m.login(user, "alice-password-1")
    m.select("INBOX")
    typ, data = m.search(None, 'SUBJECT "packaged"')
    if data[0]:
        typ, msg = m.fetch(data[0].split()[0], "(RFC822)")
        assert b"delivered by the installed package" in msg[0][1], msg
        m.logout()
        break
    m.logout()
    if time.time() > deadline:
        sys.exit("message not in INBOX")
    time.sleep(0.5)
PY
NOT_OURS=$(find "$DATA" ! -user facteur -printf '%p\n')
[ -z "$NOT_OURS" ] || fail "files not owned by facteur: $NOT_OURS"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
step "installed binary ran as facteur (uid $FUID), received over SMTP (swaks) and served over IMAP (imaplib)"

# --- Purge ----------------------------------------------------------------------------------------
dpkg_locked --purge facteur || { cat "$WORK/dpkg.log"; fail "dpkg --purge"; }
[ ! -e /usr/bin/facteur ] || fail "/usr/bin/facteur left after purge"
[ ! -e "$UNIT" ] || fail "$UNIT left after purge"
[ -d "$DATA" ] || fail "purge removed the mail in $DATA"
step "purged (the data folder and the user were kept, as documented, and are removed by this test)"
echo "test-deb: 1 passed, 0 failed"
