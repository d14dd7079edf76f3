#!/usr/bin/env python3
"""Client side of bench/run-peers.sh: standard-library clients and small measuring helpers.

Every subcommand prints one line of `key=value` pairs (or a plain value) on stdout, which the shell
script collects. Only loopback addresses are ever contacted.

  freeports N                      N free TCP ports on 127.0.0.1
  waitport PORT TIMEOUT            wait until a greeting arrives on 127.0.0.1:PORT; prints seconds
  rss PID...                       VmRSS and Pss summed over each PID and all its descendants (KiB)
  fill-maildir DIR N SIZE WORD K   write N messages of about SIZE bytes into DIR/cur; WORD in K of them
  smtp-ingest PORT SESSIONS N SIZE RCPT MAILDIR TIMEOUT
                                   run smtp-source, wait until N files are in MAILDIR/new; msg/s
  imap PORT USER PASS N WORD K RUNS    timed IMAP commands on a mailbox of N messages; medians
  pop3 PORT USER PASS N RUNS           RETR of every message; median seconds
  idle PORT USER PASS N PIDS...        N sessions LOGIN, SELECT INBOX, IDLE; RSS of PIDS' trees
"""

import asyncio
import imaplib
import os
import poplib
import random
import resource
import socket
import statistics
import subprocess
import sys
import time

HOST = "127.0.0.1"


def out(**kv):
    print(" ".join(f"{k}={v}" for k, v in kv.items()), flush=True)


# ---------------------------------------------------------------- ports and processes


def freeports(n):
    socks, ports = [], []
    for _ in range(int(n)):
        s = socket.socket()
        s.bind((HOST, 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    print(" ".join(map(str, ports)))


def waitport(port, timeout):
    start = time.monotonic()
    deadline = start + float(timeout)
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, int(port)), timeout=2) as s:
                if s.recv(512):
                    print(f"{time.monotonic() - start:.3f}")
                    return
        except OSError:
            pass
        time.sleep(0.02)
    sys.exit(f"port {port} did not answer within {timeout}s")


def _children():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pids):
    kids = _children()
    seen, todo = set(), [int(p) for p in pids]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo.extend(kids.get(p, []))
    return seen


def _kib(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure_rss(pids):
    procs = tree(pids)
    rss = sum(_kib(f"/proc/{p}/status", "VmRSS") for p in procs)
    pss = sum(_kib(f"/proc/{p}/smaps_rollup", "Pss") for p in procs)
    return len(procs), rss, pss


def rss(*pids):
    n, r, p = measure_rss(pids)
    out(procs=n, rss_kib=r, pss_kib=p)


# ---------------------------------------------------------------- mailbox filling

WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but "
    "have an they you were her she there been one all we their has would when if so no what up can "
    "more out about into than them some could time these two may then do first any my now such like "
    "other how its our over only also new most after years where invoice meeting report budget "
    "project schedule review team quarter client office order shipment delivery account payment"
).split()


def message(i, size, word=None):
    rnd = random.Random(i)
    head = (
        f"Return-Path: <sender{i % 97}@example.test>\r\n"
        f"From: Sender {i % 97} <sender{i % 97}@example.test>\r\n"
        f"To: Bench User <bench@bench.test>\r\n"
        f"Subject: {' '.join(rnd.choice(WORDS) for _ in range(5))} #{i}\r\n"
        f"Date: Mon, 2 Nov 2026 10:{i // 60 % 60:02d}:{i % 60:02d} +0000\r\n"
        f"Message-ID: <{i}.bench@example.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
    )
    body, length, line = [], len(head), []
    if word:
        body.append(f"Please see the note about {word} below.\r\n")
        length += len(body[0])
    while length < size:
        line.append(rnd.choice(WORDS))
        if len(line) == 12:
            text = " ".join(line) + "\r\n"
            body.append(text)
            length += len(text)
            line = []
    return (head + "".join(body)).encode()


def fill_maildir(d, n, size, word, k):
    n, size, k = int(n), int(size), int(k)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    every = max(1, n // max(1, k))
    planted = 0
    base = int(time.time()) - n
    for i in range(n):
        plant = k > 0 and i % every == every // 2 and planted < k
        planted += plant
        data = message(i, size, word if plant else None)
        # Maildir name with S= (size) so Dovecot need not stat the file; ":2," = no flags yet.
        name = f"{base + i}.M{i}P{os.getpid()}.bench,S={len(data)}:2,"
        with open(os.path.join(d, "cur", name), "wb") as f:
            f.write(data)
    out(messages=n, planted=planted)


# ---------------------------------------------------------------- SMTP ingest


def count(d):
    try:
        return len(os.listdir(d))
    except FileNotFoundError:
        return 0


def smtp_ingest(port, sessions, n, size, rcpt, maildir, timeout):
    n, timeout = int(n), float(timeout)
    new = os.path.join(maildir, "new")
    start = time.monotonic()
    src = subprocess.run(
        ["smtp-source", "-s", str(sessions), "-m", str(n), "-l", str(size),
         "-f", "sender@example.test", "-t", rcpt, f"{HOST}:{port}"],
        capture_output=True, text=True,
    )
    sent = time.monotonic() - start
    if src.returncode != 0:
        sys.exit(f"smtp-source failed ({src.returncode}): {src.stderr.strip()[:500]}")
    deadline = start + timeout
    got = count(new)
    while got < n and time.monotonic() < deadline:
        time.sleep(0.05)
        got = count(new)
    took = time.monotonic() - start
    ok = got >= n
    out(ok=int(ok), stored=got, seconds=f"{took:.2f}", accepted_seconds=f"{sent:.2f}",
        rate=f"{got / took:.0f}")


# ---------------------------------------------------------------- IMAP


def timed(fn):
    t = time.monotonic()
    r = fn()
    return time.monotonic() - t, r


_SSL_CTX = None


def client_tls():
    """One client TLS context per process (building one loads the CA store: too slow and too big
    to repeat for thousands of idle sessions). Self-signed peers: no verification."""
    global _SSL_CTX
    if _SSL_CTX is None:
        import ssl
        _SSL_CTX = ssl.create_default_context()
        _SSL_CTX.check_hostname = False
        _SSL_CTX.verify_mode = ssl.CERT_NONE
    return _SSL_CTX


def imap_connect(port):
    # Facteur refuses passwords before TLS (LOGINDISABLED), so its runs use implicit TLS
    # (IMAP_SSL=1); the peer is measured over its imaps listener too (and over plaintext beside).
    if os.environ.get("IMAP_SSL") == "1":
        return imaplib.IMAP4_SSL(HOST, int(port), ssl_context=client_tls())
    return imaplib.IMAP4(HOST, int(port))


def fill_imap(port, user, password, n, size, word, k):
    """Fills INBOX over IMAP APPEND with the same messages fill-maildir writes, in the same order.

    APPENDs are pipelined with LITERAL+ (RFC 7888), up to FILL_WINDOW unanswered, on one
    connection: one APPEND per round trip (imaplib's way) costs a network round trip and a
    synchronising-literal round trip per message, which made the 100,000-message fill take tens of
    minutes. Each APPEND is still its own command and its own durable commit on the server."""
    n, size, k = int(n), int(size), int(k)
    import ssl
    raw = socket.create_connection((HOST, int(port)))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock = raw
    if os.environ.get("IMAP_SSL") == "1":
        sock = client_tls().wrap_socket(raw, server_hostname="localhost")
    f = sock.makefile("rb")

    def tagged(tag):
        while True:
            line = f.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            if line.startswith(tag.encode() + b" "):
                if not line.startswith(tag.encode() + b" OK"):
                    raise RuntimeError(line.decode(errors="replace").strip())
                return

    f.readline()  # greeting
    sock.sendall(f'L LOGIN "{user}" "{password}"\r\n'.encode())
    tagged("L")
    every = max(1, n // max(1, k))
    planted = 0
    window = int(os.environ.get("FILL_WINDOW", "64"))
    sent = done = 0
    while done < n:
        buf = []
        while sent < n and sent - done < window:
            i = sent
            plant = k > 0 and i % every == every // 2 and planted < k
            planted += plant
            data = message(i, size, word if plant else None)
            buf.append(f"A{i} APPEND INBOX {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
            sent += 1
        if buf:
            sock.sendall(b"".join(buf))
        tagged(f"A{done}")
        done += 1
    sock.sendall(b"Z LOGOUT\r\n")
    sock.close()
    out(messages=n, planted=planted)


def imap(port, user, password, n, word, k, runs):
    n, k, runs = int(n), int(k), int(runs)
    res = {
        "select_fetch": [],
        "fetch_body": [],
        "search": [],
        "search_header": [],
        "sort": [],
        "store": [],
    }
    # A header search clients send all the time (messages from one correspondent): `message`
    # gives sender i % 97 to message i.
    sender, from_hits = "sender13@example.test", sum(1 for i in range(n) if i % 97 == 13)
    for _ in range(runs):
        c = imap_connect(port)
        c.login(user, password)

        def select_fetch():
            typ, data = c.select("INBOX")
            assert typ == "OK", data
            typ, data = c.uid("FETCH", "1:*", "(FLAGS RFC822.SIZE ENVELOPE)")
            assert typ == "OK", data
            return data

        t, data = timed(select_fetch)
        got = sum(1 for d in data if d and not (isinstance(d, bytes) and d == b")"))
        assert got >= n, f"UID FETCH returned {got} of {n}"
        res["select_fetch"].append(t)

        t, (typ, data) = timed(lambda: c.fetch("1:*", "(BODY.PEEK[])"))
        assert typ == "OK", data
        assert sum(1 for d in data if isinstance(d, tuple)) == n
        res["fetch_body"].append(t)

        t, (typ, data) = timed(lambda: c.search(None, "BODY", word))
        assert typ == "OK", data
        found = len(data[0].split())
        assert found == k, f"SEARCH BODY {word} found {found}, planted {k}"
        res["search"].append(t)

        t, (typ, data) = timed(lambda: c.search(None, "FROM", sender))
        assert typ == "OK", data
        found = len(data[0].split())
        assert found == from_hits, f"SEARCH FROM {sender} found {found}, expected {from_hits}"
        res["search_header"].append(t)

        t, (typ, data) = timed(lambda: c.sort("(SUBJECT)", "UTF-8", "ALL"))
        assert typ == "OK", data
        assert len(data[0].split()) == n, "SORT did not return every message"
        res["sort"].append(t)

        t, (typ, data) = timed(lambda: c.store("1:*", "+FLAGS", "(\\Seen)"))
        assert typ == "OK", data
        res["store"].append(t)
        # Untimed: back to unseen so the next run's STORE changes every message again.
        typ, data = c.store("1:*", "-FLAGS.SILENT", "(\\Seen)")
        assert typ == "OK", data
        c.logout()
    med = {key: statistics.median(v) for key, v in res.items()}
    out(**{key: f"{v:.3f}" for key, v in med.items()}, found=k)


# ---------------------------------------------------------------- POP3


def pop3(port, user, password, n, runs):
    n, times = int(n), []
    total = 0
    for _ in range(int(runs)):
        if os.environ.get("POP3_SSL") == "1":
            # Facteur refuses USER/PASS before TLS: its runs use port 995.
            c = poplib.POP3_SSL(HOST, int(port), context=client_tls())
        else:
            c = poplib.POP3(HOST, int(port))
        c.user(user)
        c.pass_(password)
        count_, _ = c.stat()
        assert count_ == n, f"maildrop has {count_} messages, expected {n}"
        t = time.monotonic()
        total = 0
        for i in range(1, count_ + 1):
            _, lines, octets = c.retr(i)
            total += octets
        times.append(time.monotonic() - t)
        c.quit()  # no DELE: the maildrop stays as it is for the next run
    s = statistics.median(times)
    out(seconds=f"{s:.3f}", rate=f"{n / s:.0f}", bytes=total)


# ---------------------------------------------------------------- idle IMAP sessions


async def _session(port, user, password, sem, writers):
    async with sem:
        ssl_ctx = client_tls() if os.environ.get("IMAP_SSL") == "1" else None
        r, w = await asyncio.open_connection(HOST, port, ssl=ssl_ctx)
        await r.readline()  # greeting

        async def cmd(tag, text):
            w.write(f"{tag} {text}\r\n".encode())
            await w.drain()
            while True:
                line = await r.readline()
                if not line:
                    raise ConnectionError(f"closed during {text.split()[0]}")
                if line.startswith(f"{tag} ".encode()):
                    if not line.startswith(f"{tag} OK".encode()):
                        raise ConnectionError(line.decode(errors="replace").strip())
                    return

        await cmd("a", f'LOGIN "{user}" "{password}"')
        await cmd("b", "SELECT INBOX")
        w.write(b"c IDLE\r\n")
        await w.drain()
        while True:
            line = await r.readline()
            if not line:
                raise ConnectionError("closed during IDLE")
            if line.startswith(b"+"):
                break
        writers.append((r, w))


async def _idle(port, user, password, n, pids):
    writers = []
    sem = asyncio.Semaphore(50)
    start = time.monotonic()
    results = await asyncio.gather(
        *(_session(port, user, password, sem, writers) for _ in range(n)), return_exceptions=True
    )
    setup = time.monotonic() - start
    errors = [r for r in results if isinstance(r, BaseException)]
    await asyncio.sleep(3)  # let processes settle after the login burst
    procs, rss_kib, pss_kib = measure_rss(pids)
    held = len(writers)
    for r, w in writers:
        w.write(b"DONE\r\nz LOGOUT\r\n")
    await asyncio.sleep(0.5)
    for r, w in writers:
        w.close()
    first = f'"{errors[0]}"'.replace(" ", "_") if errors else "none"
    out(held=held, failed=len(errors), setup_seconds=f"{setup:.1f}", procs=procs,
        rss_kib=rss_kib, pss_kib=pss_kib, first_error=first[:120])


def idle(port, user, password, n, *pids):
    n = int(n)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))
    asyncio.run(_idle(int(port), user, password, n, pids))


COMMANDS = {
    "freeports": freeports,
    "waitport": waitport,
    "rss": rss,
    "fill-maildir": fill_maildir,
    "smtp-ingest": smtp_ingest,
    "imap": imap,
    "fill-imap": fill_imap,
    "pop3": pop3,
    "idle": idle,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]](*sys.argv[2:])
