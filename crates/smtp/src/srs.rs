//! Sender Rewriting Scheme (SRS, the "SRS0" form of Shevek's scheme, as postsrsd and Postfix users
//! know it): when mail is forwarded to an outside address, the envelope sender becomes an address
//! of ours so the next hop's SPF check passes; bounces to that address are checked and sent back to
//! the original sender.
//!
//! `SRS0=HHHH=TT=domain=local@our.domain`: TT is the day (base32, mod 1024), HHHH the first four
//! base64 characters of HMAC-SHA1(secret, TT + domain + local), so only we can mint valid addresses
//! and old ones expire.

use base64::Engine;
use ring::hmac;

/// Days a rewritten address stays valid for bounces (postsrsd's default).
pub const MAX_AGE_DAYS: u32 = 21;
const HASH_LEN: usize = 4;
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Timestamps wrap after 1024 days (two base32 digits).
const TS_PERIOD: u32 = 1024;

pub struct Srs {
    key: hmac::Key,
    /// Our domain in rewritten addresses (one we receive mail for).
    pub domain: String,
}

impl std::fmt::Debug for Srs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Srs").field("domain", &self.domain).finish()
    }
}

fn day(unix: i64) -> u32 {
    (unix.div_euclid(86_400).rem_euclid(i64::from(TS_PERIOD))) as u32
}

fn ts_encode(d: u32) -> String {
    let d = d % TS_PERIOD;
    [
        BASE32[(d >> 5) as usize] as char,
        BASE32[(d & 31) as usize] as char,
    ]
    .iter()
    .collect()
}

fn ts_decode(s: &str) -> Option<u32> {
    let b = s.as_bytes();
    if b.len() != 2 {
        return None;
    }
    let v = |c: u8| {
        BASE32
            .iter()
            .position(|&x| x == c.to_ascii_uppercase())
            .map(|p| p as u32)
    };
    Some((v(b[0])? << 5) | v(b[1])?)
}

impl Srs {
    pub fn new(secret: &[u8], domain: &str) -> Srs {
        Srs {
            key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret),
            domain: domain.to_ascii_lowercase(),
        }
    }

    fn hash(&self, ts: &str, domain: &str, local: &str) -> String {
        // Case-insensitive: some MTAs change the case of addresses they pass on.
        let data = format!(
            "{}{}{}",
            ts.to_ascii_uppercase(),
            domain.to_ascii_lowercase(),
            local.to_ascii_lowercase()
        );
        let tag = hmac::sign(&self.key, data.as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
        b64[..HASH_LEN].to_string()
    }

    /// Rewrites `sender` for forwarding. The null sender and addresses already in our domain (or
    /// already rewritten by us) stay as they are.
    pub fn forward(&self, sender: &str, now: i64) -> String {
        let Some((local, domain)) = sender.rsplit_once('@') else {
            return sender.to_string();
        };
        if sender.is_empty() || domain.eq_ignore_ascii_case(&self.domain) {
            return sender.to_string();
        }
        let ts = ts_encode(day(now));
        let h = self.hash(&ts, domain, local);
        format!("SRS0={h}={ts}={domain}={local}@{}", self.domain)
    }

    /// The original sender behind an SRS0 local part of ours, if it is genuine and not expired.
    /// `Ok(None)`: not an SRS address. `Err`: an SRS address that does not verify.
    pub fn reverse(&self, local: &str, now: i64) -> Result<Option<String>, &'static str> {
        let Some(rest) = local
            .get(..5)
            .filter(|p| p.eq_ignore_ascii_case("SRS0="))
            .map(|_| &local[5..])
        else {
            return Ok(None);
        };
        let mut parts = rest.splitn(4, '=');
        let (Some(h), Some(ts), Some(domain), Some(orig_local)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("malformed SRS address");
        };
        if domain.is_empty() || orig_local.is_empty() {
            return Err("malformed SRS address");
        }
        let expected = self.hash(ts, domain, orig_local);
        // Compared case-insensitively, like the hash input: base64 loses a bit, as postsrsd accepts.
        if !h.eq_ignore_ascii_case(&expected) {
            return Err("SRS address with a bad signature");
        }
        let then = ts_decode(ts).ok_or("malformed SRS timestamp")?;
        let age = (day(now) + TS_PERIOD - then) % TS_PERIOD;
        if age > MAX_AGE_DAYS {
            return Err("expired SRS address");
        }
        Ok(Some(format!("{orig_local}@{domain}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000;

    #[test]
    fn round_trip() {
        let srs = Srs::new(b"secret", "fwd.example");
        let a = srs.forward("alice@origin.test", NOW);
        assert!(a.starts_with("SRS0="), "{a}");
        assert!(a.ends_with("=origin.test=alice@fwd.example"), "{a}");
        let local = a.rsplit_once('@').unwrap().0;
        assert_eq!(
            srs.reverse(local, NOW).unwrap().as_deref(),
            Some("alice@origin.test")
        );
        // Case changes on the way back are tolerated.
        assert_eq!(
            srs.reverse(&local.to_ascii_lowercase(), NOW)
                .unwrap()
                .as_deref(),
            Some("alice@origin.test")
        );
        assert_eq!(
            srs.reverse(local, NOW + 10 * 86_400).unwrap().as_deref(),
            Some("alice@origin.test")
        );
    }

    #[test]
    fn forgeries_and_old_addresses_fail() {
        let srs = Srs::new(b"secret", "fwd.example");
        let a = srs.forward("alice@origin.test", NOW);
        let local = a.rsplit_once('@').unwrap().0;
        let forged = local.replace("alice", "mallory");
        assert!(srs.reverse(&forged, NOW).is_err());
        assert!(
            Srs::new(b"other", "fwd.example")
                .reverse(local, NOW)
                .is_err()
        );
        assert!(srs.reverse(local, NOW + 30 * 86_400).is_err(), "expired");
        assert!(srs.reverse("SRS0=broken", NOW).is_err());
        assert_eq!(srs.reverse("alice", NOW), Ok(None));
    }

    #[test]
    fn local_and_null_senders_are_kept() {
        let srs = Srs::new(b"secret", "fwd.example");
        assert_eq!(srs.forward("", NOW), "");
        assert_eq!(srs.forward("bob@FWD.example", NOW), "bob@FWD.example");
    }
}
