//! The log lines of logins: one per failure (matched by fail2ban, format fixed), one per success,
//! one per ban and one per end of a ban. Every user name is sanitised so a client cannot forge a
//! line or a field.

use std::net::IpAddr;
use std::time::Duration;

use super::{BanKey, MAX_LOGGED_USER_LEN};

/// The target of every line here, whatever module logs it: `docs/fail2ban.md` shows it, and a
/// `log.level` filter such as `warn,net::throttle=info` selects these lines.
const TARGET: &str = "net::throttle";

/// A user name safe to log: printable ASCII without spaces (anything else becomes `?`), at most
/// [`MAX_LOGGED_USER_LEN`] characters, so a client cannot forge log lines or fields.
pub fn sanitize_user(user: &str) -> String {
    user.chars()
        .take(MAX_LOGGED_USER_LEN)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

/// The log line of one failed login, matched by the fail2ban filter in `docs/fail2ban.md`:
/// `auth failure: protocol=<p> ip=<ip> user=<u> failures=<n>`. Keep it stable.
pub fn failure_line(protocol: &str, ip: IpAddr, user: &str, failures: u32) -> String {
    format!(
        "auth failure: protocol={} ip={ip} user={} failures={failures}",
        sanitize_user(protocol),
        sanitize_user(user)
    )
}

pub(crate) fn failure(protocol: &str, ip: IpAddr, user: &str, failures: u32) {
    // The message is fail2ban's; the same facts as typed fields for JSON logs.
    tracing::warn!(
        target: TARGET,
        service = %sanitize_user(protocol),
        peer = %ip,
        user = %sanitize_user(user),
        reason = "invalid credentials",
        failures,
        "{}",
        failure_line(protocol, ip, user, failures)
    );
}

/// One INFO line per successful login (IMAP, POP3, submission), with typed fields: `service`,
/// `user`, `peer` (absent for a Unix socket), `tls` and the SASL `mechanism` (or `LOGIN`/`USER`
/// for the protocols' own commands).
pub fn login_success(service: &str, user: &str, peer: Option<IpAddr>, tls: bool, mechanism: &str) {
    let user = sanitize_user(user);
    let mechanism = sanitize_user(mechanism);
    match peer {
        Some(ip) => tracing::info!(
            target: TARGET,
            service = %service,
            user = %user,
            peer = %ip,
            tls,
            mechanism = %mechanism,
            "login"
        ),
        None => tracing::info!(
            target: TARGET,
            service = %service,
            user = %user,
            tls,
            mechanism = %mechanism,
            "login"
        ),
    }
}

/// A login refused without checking the password (a ban). DEBUG: a banned client may try again
/// and again; the count goes into the line that ends the ban.
pub(crate) fn refused(protocol: &str, ip: IpAddr, user: &str, key: &BanKey) {
    tracing::debug!(
        target: TARGET,
        protocol = %protocol,
        ip = %ip,
        user = %sanitize_user(user),
        ban = %key,
        "auth refused without a password check"
    );
}

/// Why a ban came to apply in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanOrigin {
    /// Failed logins counted here.
    Failures,
    /// Read from the store: made before a restart, or by another server sharing the store.
    Store,
}

pub(crate) fn ban_started(key: &BanKey, failures: u32, left: Duration, origin: BanOrigin) {
    let origin = match origin {
        BanOrigin::Failures => "failures",
        BanOrigin::Store => "store",
    };
    match key {
        BanKey::Source(s) => tracing::warn!(
            target: TARGET,
            source = %s,
            failures,
            secs = left.as_secs(),
            origin = %origin,
            "login ban: source refused for every account"
        ),
        BanKey::Account(a) => tracing::warn!(
            target: TARGET,
            account = %sanitize_user(a),
            failures,
            secs = left.as_secs(),
            origin = %origin,
            "login ban: account refused to sources it never logged in from"
        ),
    }
}

/// How a ban ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanEnd {
    Expired,
    /// Lifted by an administrator (`facteur ban remove`).
    Lifted,
}

pub(crate) fn ban_ended(key: &BanKey, failures: u32, refused: u64, end: BanEnd) {
    let reason = match end {
        BanEnd::Expired => "expired",
        BanEnd::Lifted => "lifted",
    };
    match key {
        BanKey::Source(s) => tracing::warn!(
            target: TARGET,
            source = %s,
            failures,
            refused,
            reason = %reason,
            "login ban ended"
        ),
        BanKey::Account(a) => tracing::warn!(
            target: TARGET,
            account = %sanitize_user(a),
            failures,
            refused,
            reason = %reason,
            "login ban ended"
        ),
    }
}
