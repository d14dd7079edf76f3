//! A throwaway Postfix instance (scripts/postfix-peer.sh: its own folders under a temporary folder,
//! smtpd on a free loopback port with STARTTLS, relaying everything to one next hop). Needs Postfix
//! and root; CI runs scripts/test.sh as root, which installs it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/postfix-peer.sh");

/// A running Postfix instance; stopped (by the PID in its own pid file) when dropped.
pub struct Postfix {
    pub dir: tempfile::TempDir,
    pub smtpd: SocketAddr,
    pub maillog: PathBuf,
}

impl Postfix {
    pub fn start(mode: &str, next_hop: SocketAddr) -> Postfix {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        assert!(
            root,
            "the Postfix peer tests need root (Postfix's master starts as root); CI runs them as root"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("bash")
            .arg(SCRIPT)
            .arg("start")
            .arg(dir.path())
            .arg(mode)
            .arg(next_hop.to_string())
            .output()
            .expect("run scripts/postfix-peer.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => {}
            Some(2) => panic!(
                "Postfix is not available, so the Postfix peer tests cannot run: {stderr}\n\
                 Install it with scripts/test.sh (as root) or `apt-get install postfix`."
            ),
            _ => panic!("scripts/postfix-peer.sh start failed: {stderr}"),
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let get = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("no {key}= in the script's output:\n{stdout}"))
                .to_string()
        };
        Postfix {
            smtpd: get("smtpd").parse().expect("smtpd address"),
            maillog: get("maillog").into(),
            dir,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.maillog).unwrap_or_else(|e| format!("(no maillog: {e})"))
    }

    /// Submits a message to Postfix's smtpd with Python's smtplib.
    pub fn inject(&self, from: &str, to: &[&str], message: &str) {
        let rcpts = to
            .iter()
            .map(|r| format!("{r:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let script = format!(
            "import smtplib\n\
             s = smtplib.SMTP({host:?}, {port})\n\
             s.ehlo('client.postfix-peer.test')\n\
             refused = s.sendmail({from:?}, [{rcpts}], {message:?}.encode())\n\
             assert not refused, refused\n\
             s.quit()\n",
            host = self.smtpd.ip().to_string(),
            port = self.smtpd.port(),
        );
        let out = Command::new("python3")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "smtplib into Postfix failed: {}{}\n--- postfix log ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(SCRIPT)
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}
