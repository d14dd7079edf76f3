//! A throwaway DNS server for tests: Debian's dnsmasq on 127.0.0.1 and a free port, answering only
//! the records a test gives it (names under `.test` that it does not know get NXDOMAIN). Started
//! and stopped (by PID) by the test; installed by scripts/test.sh (package dnsmasq-base).

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub enum Record<'a> {
    /// domain, exchange ("." for a null MX), preference
    Mx(&'a str, &'a str, u16),
    /// name, IPv4 or IPv6 address
    Addr(&'a str, &'a str),
    Txt(&'a str, &'a str),
    /// name, target, port, priority, weight
    Srv(&'a str, &'a str, u16, u16, u16),
    /// alias, target (the target must be known to dnsmasq, e.g. by an Addr record)
    Cname(&'a str, &'a str),
    /// domain, upstream server: queries for names under the domain go there (a silent one
    /// makes them time out)
    Forward(&'a str, SocketAddr),
}

pub struct Dnsmasq {
    child: Child,
    pub addr: SocketAddr,
}

/// Asks for the A record of `name` and returns the response code, if any answer came.
fn probe(addr: SocketAddr, name: &str) -> Option<u8> {
    let sock = UdpSocket::bind("127.0.0.1:0").ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .ok()?;
    let mut pkt = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        pkt.push(label.len() as u8);
        pkt.extend_from_slice(label.as_bytes());
    }
    pkt.extend_from_slice(&[0, 0, 1, 0, 1]);
    sock.send_to(&pkt, addr).ok()?;
    let mut buf = [0u8; 512];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    (n >= 4).then(|| buf[3] & 0x0f)
}

impl Dnsmasq {
    pub fn start(records: &[Record]) -> Dnsmasq {
        for _ in 0..10 {
            if let Some(d) = Dnsmasq::try_start(Dnsmasq::free_port(), records) {
                return d;
            }
        }
        panic!("dnsmasq did not start");
    }

    /// A UDP port free on 127.0.0.1 now (for servers configured before their DNS starts).
    pub fn free_port() -> u16 {
        UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("free port")
            .port()
    }

    /// Starts on a port chosen earlier with [`Dnsmasq::free_port`].
    pub fn start_on(port: u16, records: &[Record]) -> Dnsmasq {
        Dnsmasq::try_start(port, records).expect("dnsmasq did not start on its port")
    }

    fn try_start(port: u16, records: &[Record]) -> Option<Dnsmasq> {
        let bin = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("dnsmasq is not installed (scripts/test.sh installs dnsmasq-base)");
        {
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
            let mut args: Vec<String> = [
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--pid-file=",
                "--local=/test/",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.push(format!("--port={port}"));
            for r in records {
                args.push(match r {
                    Record::Mx(d, h, p) => format!("--mx-host={d},{h},{p}"),
                    Record::Addr(n, ip) => format!("--host-record={n},{ip}"),
                    // Commas would split the text into several strings: tests use none.
                    Record::Txt(n, t) => format!("--txt-record={n},{t}"),
                    Record::Srv(n, t, port, prio, w) => {
                        format!("--srv-host={n},{t},{port},{prio},{w}")
                    }
                    Record::Cname(a, t) => format!("--cname={a},{t}"),
                    Record::Forward(d, up) => format!("--server=/{d}/{}#{}", up.ip(), up.port()),
                });
            }
            let child = Command::new(bin)
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start dnsmasq");
            let mut d = Dnsmasq { child, addr };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if probe(addr, "ready.probe.test").is_some() {
                    return Some(d);
                }
                if let Ok(Some(_)) = d.child.try_wait() {
                    break; // port taken
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = d.child.kill();
            let _ = d.child.wait();
        }
        None
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
