//! What the limit tests (floods, idle sockets, slow clients) observe of the server process: its
//! memory over one attack, and enough file descriptors for thousands of sockets.

use super::Server;

fn proc_status_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} in /proc/{pid}/status"))
}

/// The server's memory over one attack: VmRSS before, VmHWM (peak) after. The peak is reset at
/// the start (`/proc/PID/clear_refs`, "5"), so it is the peak of this attack, not of start-up;
/// if the reset is refused the peak can only be higher, never hide growth.
pub struct Mem {
    pid: u32,
    before_kb: u64,
    reset: bool,
    /// Prefix of the printed figures (the test file).
    label: &'static str,
    max_growth_kb: u64,
}

impl Mem {
    pub fn start(server: &Server, label: &'static str, max_growth_kb: u64) -> Mem {
        let pid = server.child.as_ref().expect("server running").id();
        let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
        Mem {
            pid,
            before_kb: proc_status_kb(pid, "VmRSS:"),
            reset,
            label,
            max_growth_kb,
        }
    }

    /// Prints the figures and asserts the growth stays under the bound given at the start.
    pub fn check(&self, what: &str) {
        assert!(
            std::path::Path::new(&format!("/proc/{}", self.pid)).exists(),
            "the server process died during {what}"
        );
        let peak = proc_status_kb(self.pid, "VmHWM:");
        let now = proc_status_kb(self.pid, "VmRSS:");
        let growth = peak.saturating_sub(self.before_kb);
        eprintln!(
            "{}: {what}: server VmRSS before {} KiB, VmHWM during {peak} KiB (peak reset: {}), \
             VmRSS after {now} KiB, growth {growth} KiB",
            self.label, self.before_kb, self.reset
        );
        assert!(
            growth < self.max_growth_kb,
            "{what}: the server's memory grew by {growth} KiB (VmRSS {} KiB before, peak {peak} KiB)",
            self.before_kb
        );
    }
}

/// Raises this process's open-file limit (a server started after inherits it) so that `want`
/// sockets fit: a per-IP limit, not a lack of descriptors, must be what refuses them.
pub fn raise_nofile(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
    assert!(
        lim.rlim_cur >= want,
        "RLIMIT_NOFILE {} (hard {}) is below {want}",
        lim.rlim_cur,
        lim.rlim_max
    );
}
