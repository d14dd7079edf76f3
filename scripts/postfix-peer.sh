#!/usr/bin/env bash
# A throwaway Postfix instance for tests: its own config, queue and data folders under DIR, smtpd on
# a free loopback port, relaying everything to one next hop. It never touches the system instance
# (/etc/postfix, /var/spool/postfix) and is stopped by the PID in its own pid file.
#
#   scripts/postfix-peer.sh start DIR smtp HOST:PORT   # relayhost = [HOST]:PORT (an SMTP MX)
#   scripts/postfix-peer.sh start DIR lmtp HOST:PORT   # deliver with lmtp:inet:HOST:PORT
#   scripts/postfix-peer.sh stop DIR                   # SIGTERM to this instance's master only
#
# `start` prints key=value lines: master_pid, pid_file, smtpd (HOST:PORT to inject mail), maillog.
# Postfix needs root here (its master runs as root and its daemons as the `postfix` user).
# Exit status 2: Postfix is not installed or we are not root.
set -euo pipefail

usage() {
  echo "usage: $0 start DIR smtp|lmtp HOST:PORT | $0 stop DIR" >&2
  exit 64
}

# Seconds to wait for the instance to listen, and for it to exit when stopped.
START_WAIT=20
STOP_WAIT=20

[ $# -ge 2 ] || usage
cmd=$1
dir=$(cd "$2" && pwd)
pid_file="$dir/spool/pid/master.pid"

case $cmd in
start)
  [ $# -eq 4 ] || usage
  mode=$3
  next_hop=$4
  if ! command -v postfix >/dev/null 2>&1 && [ ! -x /usr/sbin/postfix ]; then
    echo "postfix is not installed: scripts/test.sh installs it (apt-get install postfix, as root)" >&2
    exit 2
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "a Postfix instance needs root (its master starts as root)" >&2
    exit 2
  fi
  id postfix >/dev/null 2>&1 || { echo "no postfix user: is the postfix package installed?" >&2; exit 2; }
  postfix=$(command -v postfix || echo /usr/sbin/postfix)
  daemon_dir=$(postconf -dh daemon_directory)
  [ -x "$daemon_dir/master" ] || { echo "postfix daemons not found in $daemon_dir" >&2; exit 2; }
  host=${next_hop%:*}
  port=${next_hop##*:}

  # A free loopback port for our smtpd (bound and released by the kernel's choice).
  smtpd_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

  mkdir -p "$dir/etc" "$dir/spool" "$dir/data"
  # The daemons run as `postfix` and must reach the queue below DIR.
  chmod 755 "$dir"
  chown root:root "$dir/spool" "$dir/etc"
  chown postfix "$dir/data"
  # A self-signed certificate so peers can use STARTTLS with this smtpd (Postfix reads the key as
  # root before dropping privileges).
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=postfix-peer.test" \
    -keyout "$dir/etc/key.pem" -out "$dir/etc/cert.pem" >/dev/null 2>&1
  chmod 600 "$dir/etc/key.pem"

  case $mode in
  smtp) transport="relayhost = [$host]:$port" ;;
  lmtp) transport="relayhost =
default_transport = lmtp:inet:$host:$port
relay_transport = lmtp:inet:$host:$port" ;;
  *) usage ;;
  esac

  cat >"$dir/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/spool
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-peer.test
mydomain = postfix-peer.test
myorigin = postfix-peer.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
$transport
smtp_dns_support_level = disabled
smtp_tls_security_level = may
smtp_tls_loglevel = 1
smtpd_tls_cert_file = $dir/etc/cert.pem
smtpd_tls_key_file = $dir/etc/key.pem
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
lmtp_tls_security_level = none
biff = no
append_dot_mydomain = no
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
# Retry quickly: the test waits seconds, not minutes.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtp_connect_timeout = 5s
lmtp_connect_timeout = 5s
EOF

  # chroot = n everywhere: the instance lives in a temporary folder, not a prepared jail.
  cat >"$dir/etc/master.cf" <<EOF
127.0.0.1:$smtpd_port inet n - n - - smtpd
pickup    unix  n - n 60   1 pickup
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -    - proxymap
proxywrite unix - - n -    1 proxymap
smtp      unix  - - n -    - smtp
relay     unix  - - n -    - smtp
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
lmtp      unix  - - n -    - lmtp
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF

  # Creates the queue directories with their owners, then starts the master (as root).
  "$postfix" -c "$dir/etc" check >"$dir/check.log" 2>&1 || { cat "$dir/check.log" >&2; exit 1; }
  "$postfix" -c "$dir/etc" start >"$dir/start.log" 2>&1 || { cat "$dir/start.log" "$dir/maillog" >&2 2>/dev/null; exit 1; }

  for _ in $(seq $((START_WAIT * 10))); do
    if [ -s "$pid_file" ] && (exec 3<>"/dev/tcp/127.0.0.1/$smtpd_port") 2>/dev/null; then
      echo "master_pid=$(tr -d ' \n' <"$pid_file")"
      echo "pid_file=$pid_file"
      echo "smtpd=127.0.0.1:$smtpd_port"
      echo "maillog=$dir/maillog"
      exit 0
    fi
    sleep 0.1
  done
  echo "postfix did not start listening on 127.0.0.1:$smtpd_port" >&2
  cat "$dir/start.log" "$dir/maillog" >&2 2>/dev/null || true
  exit 1
  ;;
stop)
  [ -s "$pid_file" ] || exit 0
  pid=$(tr -d ' \n' <"$pid_file")
  # Only the master this instance recorded, and only if it really is a Postfix master.
  if [ -n "$pid" ] && grep -q master "/proc/$pid/comm" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq $((STOP_WAIT * 10))); do
      [ -d "/proc/$pid" ] || exit 0
      sleep 0.1
    done
    echo "postfix master $pid still running" >&2
    exit 1
  fi
  ;;
*) usage ;;
esac
