//! Which peer addresses count as one client, for every per-client limit (connections, login
//! throttling).
//!
//! An IPv6 subscriber usually holds a whole /64 (RFC 6177 recommends at least a /56 per site, and
//! SLAAC needs a /64), so counting exact IPv6 addresses would let one client rotate through 2^64 of
//! them; counting per /64 does not. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, RFC 4291
//! §2.5.5.2), which a dual-stack listener on `[::]` reports for IPv4 clients, are the IPv4 address
//! itself: grouping them by /64 would make every IPv4 client one.

use std::net::{IpAddr, Ipv6Addr};

/// Bits of an IPv6 address that identify one client.
pub const IPV6_CLIENT_PREFIX_BITS: u32 = 64;

/// The key one client is counted under: an IPv4 address as it is (also when IPv4-mapped), an
/// IPv6 address by its /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mask = u128::MAX << (128 - IPV6_CLIENT_PREFIX_BITS);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn ipv6_by_64_and_ipv4_as_is() {
        assert_eq!(client_key(ip("2001:db8:1:2::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            client_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(
            client_key(ip("2001:db8:1:3::1")),
            client_key(ip("2001:db8:1:2::1"))
        );
        assert_eq!(client_key(ip("192.0.2.7")), ip("192.0.2.7"));
        // A dual-stack listener's view of two IPv4 clients: two clients, not one /64.
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_ne!(
            client_key(ip("::ffff:192.0.2.7")),
            client_key(ip("::ffff:192.0.2.8"))
        );
        assert_eq!(client_key(ip("::1")), ip("::"));
    }
}
