//! The connection checks' readers on arbitrary input: HELO arguments, DNS list query names and
//! answers. Properties: no panic; a HELO read as a name or literal renders to a form that reads
//! back the same; the query name of any address under a zone reads back to that address and a
//! domain query is a bounded DNS name under the zone; only answers in 127.0.0.0/8 outside the
//! 127.255.255.0/24 error codes ever count as a listing, and only answers that were given.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use smtp::conn::dnsbl::{
    self, Listing, MAX_NAME, Zone, ZoneAction, ZoneKind, domain_query, interpret, ip_from_query,
    ip_query,
};
use smtp::conn::helo::{self, Helo};

const ZONE: &str = "bl.example.test";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    let parsed = helo::parse(&text);
    if let Some(canonical) = helo::render(&parsed) {
        assert_eq!(helo::parse(&canonical), parsed, "{text:?}");
    }
    if let Helo::Fqdn(name) = &parsed {
        assert!(name.len() <= MAX_NAME && name.contains('.'));
    }

    if let Some(q) = domain_query(&text, ZONE) {
        assert!(q.len() <= MAX_NAME && q.ends_with(&format!(".{ZONE}")), "{q}");
    }
    let _ = ip_from_query(&text, ZONE);

    if data.len() >= 16 {
        let mut b = [0u8; 16];
        b.copy_from_slice(&data[..16]);
        let v6 = IpAddr::V6(Ipv6Addr::from(b));
        assert_eq!(ip_from_query(&ip_query(v6, ZONE), ZONE), Some(v6));
        let v4 = IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]));
        assert_eq!(ip_from_query(&ip_query(v4, ZONE), ZONE), Some(v4));
    }

    let answers: Vec<Ipv4Addr> = data
        .chunks_exact(4)
        .take(16)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect();
    let zone = Zone {
        zone: ZONE.into(),
        kind: ZoneKind::Ip,
        action: ZoneAction::Score,
        score: 1.0,
        codes: answers.iter().copied().take(1).collect(),
    };
    for z in [zone.clone(), Zone { codes: vec![], ..zone }] {
        if let Listing::Listed(codes) = interpret(&z, &answers) {
            assert!(!codes.is_empty());
            for c in codes {
                assert!(answers.contains(&c));
                assert_eq!(c.octets()[0], 127);
                assert_ne!(c.octets()[..3], [127, 255, 255]);
                assert!(z.codes.is_empty() || z.codes.contains(&c));
            }
        }
    }
    let _ = dnsbl::is_domain(&text);
});
