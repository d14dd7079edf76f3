//! DNSSEC for tests: zones signed with ldns-signzone (Debian's ldnsutils), served by NSD, and a
//! validating unbound in front of it that trusts the signed zones' keys and sets the AD bit on
//! what it validated (unsigned zones come back without AD, as "insecure"). Everything on
//! 127.0.0.1 and free ports, started and stopped (by PID) by the test; the packages are installed
//! by scripts/test.sh.

#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A zone: its name, its records in zone-file syntax (relative names allowed; $ORIGIN is the
/// zone), and whether it is signed.
pub struct Zone<'a> {
    pub name: &'a str,
    pub records: String,
    pub signed: bool,
}

pub struct SignedDns {
    nsd: Child,
    unbound: Child,
    /// The validating resolver: what Facteur's `[dns] nameservers` points at.
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for SignedDns {
    fn drop(&mut self) {
        for child in [&mut self.unbound, &mut self.nsd] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    // A port free for UDP and TCP alike.
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn run(dir: &Path, cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (scripts/test.sh installs ldnsutils)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The response code and AD bit of an A query for `name`, if an answer came.
fn probe(addr: SocketAddr, name: &str) -> Option<(u8, bool)> {
    let sock = UdpSocket::bind("127.0.0.1:0").ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .ok()?;
    // RD and AD set; one question; an OPT record with the DO bit.
    let mut pkt = vec![0x43, 0x21, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in name.split('.') {
        pkt.push(label.len() as u8);
        pkt.extend_from_slice(label.as_bytes());
    }
    pkt.extend_from_slice(&[0, 0, 1, 0, 1]);
    pkt.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]);
    sock.send_to(&pkt, addr).ok()?;
    let mut buf = [0u8; 1500];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    (n >= 4).then(|| (buf[3] & 0x0f, buf[3] & 0x20 != 0))
}

impl SignedDns {
    pub fn start(zones: &[Zone]) -> SignedDns {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let mut nsd_zones = String::new();
        let mut anchors = String::new();
        let mut stubs = String::new();
        for z in zones {
            let file = format!("{}.zone", z.name);
            std::fs::write(
                d.join(&file),
                format!(
                    "$ORIGIN {name}.\n$TTL 300\n@ IN SOA ns.{name}. admin.{name}. 1 3600 600 86400 300\n\
                     @ IN NS ns.{name}.\nns IN A 127.0.0.1\n{records}\n",
                    name = z.name,
                    records = z.records
                ),
            )
            .expect("zone file");
            let served = if z.signed {
                let ksk = run(d, "ldns-keygen", &["-a", "ED25519", "-k", z.name]);
                let zsk = run(d, "ldns-keygen", &["-a", "ED25519", z.name]);
                run(d, "ldns-signzone", &["-n", &file, &ksk, &zsk]);
                anchors.push_str(&format!(
                    "  trust-anchor-file: \"{}\"\n",
                    d.join(format!("{ksk}.key")).display()
                ));
                format!("{file}.signed")
            } else {
                file
            };
            nsd_zones.push_str(&format!(
                "zone:\n  name: {}\n  zonefile: {served}\n",
                z.name
            ));
        }
        for _ in 0..10 {
            let (nsd_port, ub_port) = (free_port(), free_port());
            stubs.clear();
            for z in zones {
                stubs.push_str(&format!(
                    "stub-zone:\n  name: \"{}\"\n  stub-addr: 127.0.0.1@{nsd_port}\n",
                    z.name
                ));
            }
            std::fs::write(
                d.join("nsd.conf"),
                format!(
                    "server:\n  ip-address: 127.0.0.1@{nsd_port}\n  port: {nsd_port}\n  username: \"\"\n  \
                     chroot: \"\"\n  zonesdir: \"{dir}\"\n  database: \"\"\n  pidfile: \"{dir}/nsd.pid\"\n  \
                     xfrdfile: \"{dir}/xfrd.state\"\n  zonelistfile: \"{dir}/zone.list\"\n  \
                     logfile: \"{dir}/nsd.log\"\n  server-count: 1\n\
                     remote-control:\n  control-enable: no\n{nsd_zones}",
                    dir = d.display()
                ),
            )
            .expect("nsd.conf");
            // `.test` is one of unbound's built-in empty zones (RFC 6761): "nodefault" lets the
            // stub zones answer. No root trust anchor: only the zones signed here validate.
            std::fs::write(
                d.join("unbound.conf"),
                format!(
                    "server:\n  interface: 127.0.0.1@{ub_port}\n  port: {ub_port}\n  username: \"\"\n  \
                     chroot: \"\"\n  directory: \"{dir}\"\n  pidfile: \"{dir}/unbound.pid\"\n  \
                     logfile: \"{dir}/unbound.log\"\n  use-syslog: no\n  do-daemonize: no\n  \
                     access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n  \
                     num-threads: 1\n  so-reuseport: no\n  module-config: \"validator iterator\"\n  \
                     local-zone: \"test.\" nodefault\n  val-log-level: 2\n{anchors}\
                     remote-control:\n  control-enable: no\n{stubs}",
                    dir = d.display()
                ),
            )
            .expect("unbound.conf");
            let Ok(mut nsd) = Command::new("/usr/sbin/nsd")
                .args(["-d", "-c"])
                .arg(d.join("nsd.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            else {
                panic!("nsd is not installed (scripts/test.sh installs it)");
            };
            let Ok(mut unbound) = Command::new("/usr/sbin/unbound")
                .arg("-c")
                .arg(d.join("unbound.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            else {
                let _ = nsd.kill();
                panic!("unbound is not installed (scripts/test.sh installs it)");
            };
            let addr: SocketAddr = format!("127.0.0.1:{ub_port}").parse().unwrap();
            // Ready when the resolver answers for the first zone's name server through NSD.
            let probe_name = format!("ns.{}", zones[0].name);
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut ready = false;
            while Instant::now() < deadline {
                if let Some((0, _)) = probe(addr, &probe_name) {
                    ready = true;
                    break;
                }
                if nsd.try_wait().ok().flatten().is_some()
                    || unbound.try_wait().ok().flatten().is_some()
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if ready {
                return SignedDns {
                    nsd,
                    unbound,
                    addr,
                    _dir: dir,
                };
            }
            for c in [&mut unbound, &mut nsd] {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        panic!(
            "nsd/unbound did not start; logs in {}",
            dir.path().display()
        );
    }

    /// Whether the resolver vouches (AD bit) for the A record of `name`.
    pub fn is_secure(&self, name: &str) -> bool {
        matches!(probe(self.addr, name), Some((0, true)))
    }
}

/// The TLSA association data "3 1 1" for a PEM certificate: SHA-256 of its public key (SPKI),
/// in hex, computed with openssl (independent of Facteur's own code).
pub fn spki_sha256_hex(cert_pem: &Path) -> String {
    let pubkey = Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(cert_pem)
        .output()
        .expect("openssl");
    assert!(pubkey.status.success());
    let mut der = Command::new("openssl")
        .args(["pkey", "-pubin", "-outform", "DER"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    use std::io::Write;
    der.stdin.take().unwrap().write_all(&pubkey.stdout).unwrap();
    let der = der.wait_with_output().expect("openssl pkey");
    let mut hash = Command::new("openssl")
        .args(["dgst", "-sha256", "-r"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    hash.stdin.take().unwrap().write_all(&der.stdout).unwrap();
    let out = hash.wait_with_output().expect("openssl dgst");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_string()
}
