//! Corpus of tricky messages (tests/corpus/*.eml) with the values IMAP must report for
//! each, generated limit cases, and robustness over truncations and mutations.

use message::{Address, Analysis, BodyPart, Limits, analyze, analyze_unguarded};

fn corpus_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn load(name: &str) -> Vec<u8> {
    std::fs::read(corpus_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn run(name: &str) -> (Vec<u8>, Analysis) {
    let raw = load(name);
    let a = analyze_unguarded(&raw, &Limits::default());
    (raw, a)
}

/// IMAP part number ("1.2") to part; message/rfc822 parts are entered like IMAP does.
fn part<'a>(root: &'a BodyPart, path: &[usize]) -> &'a BodyPart {
    let mut p = root;
    for &n in path {
        if let Some(m) = &p.message {
            p = &m.1;
        }
        if p.children.is_empty() {
            assert_eq!(n, 1, "non-multipart has only part 1");
        } else {
            p = &p.children[n - 1];
        }
    }
    p
}

fn body<'a>(raw: &'a [u8], p: &BodyPart) -> &'a str {
    std::str::from_utf8(p.body_bytes(raw)).expect("utf-8 body")
}

fn header<'a>(raw: &'a [u8], p: &BodyPart) -> &'a str {
    std::str::from_utf8(p.header_bytes(raw)).expect("utf-8 header")
}

fn addr(name: Option<&str>, mailbox: &str, host: &str) -> Address {
    Address {
        name: name.map(Into::into),
        adl: None,
        mailbox: Some(mailbox.into()),
        host: Some(host.into()),
    }
}

fn params(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn simple_crlf() {
    let (raw, a) = run("simple_crlf.eml");
    let e = &a.envelope;
    assert_eq!(e.date.as_deref(), Some("Tue, 2 Jan 2024 09:30:00 +0100"));
    // Folded subject is unfolded, not decoded.
    assert_eq!(e.subject.as_deref(), Some("Re: [proj] Fwd: status report"));
    assert_eq!(
        e.from,
        vec![addr(Some("Alice Example"), "alice", "example.org")]
    );
    assert_eq!(e.sender, e.from);
    assert_eq!(e.reply_to, e.from);
    // Group syntax as IMAP encodes it.
    assert_eq!(
        e.to,
        vec![
            Address {
                mailbox: Some("Team".into()),
                ..Default::default()
            },
            addr(None, "bob", "example.com"),
            addr(Some("Carol, C."), "carol", "example.net"),
            Address::default(),
            addr(Some("Dave D"), "dave", "example.com"),
        ]
    );
    assert_eq!(e.cc[0].adl.as_deref(), Some("@relay.example"));
    assert_eq!(e.cc[0].mailbox.as_deref(), Some("erin"));
    assert_eq!(e.message_id.as_deref(), Some("<msg1@example.org>"));
    assert_eq!(e.in_reply_to.as_deref(), Some("<msg0@example.org>"));

    let h = &a.headers;
    assert_eq!(h.date, Some(1_704_184_200));
    assert_eq!(h.base_subject, "status report");
    assert_eq!(
        h.to,
        vec!["bob@example.com", "carol@example.net", "dave@example.com"]
    );
    assert_eq!(h.cc, vec!["erin@example.com"]);
    assert_eq!(h.message_id.as_deref(), Some("msg1@example.org"));
    assert_eq!(h.in_reply_to, vec!["msg0@example.org"]);
    assert_eq!(h.references, vec!["root@example.org", "msg0@example.org"]);

    assert_eq!(a.body.content_type, "text");
    assert_eq!(a.body.encoding, "7BIT");
    assert_eq!(
        body(&raw, &a.body),
        "Hello team,\r\nthe status is green.\r\n"
    );
    assert_eq!(a.body.lines, Some(2));
    assert!(header(&raw, &a.body).ends_with("<msg0@example.org>\r\n\r\n"));
    assert_eq!(a.body.header_range.1 as usize, message::header_end(&raw));
    assert!(!a.truncated);
}

#[test]
fn bare_lf_alternative() {
    let (raw, a) = run("bare_lf_alternative.eml");
    assert_eq!(
        (a.body.content_type.as_str(), a.body.subtype.as_str()),
        ("multipart", "alternative")
    );
    assert_eq!(a.body.children.len(), 2);
    let p1 = part(&a.body, &[1]);
    assert_eq!(p1.encoding, "QUOTED-PRINTABLE");
    assert_eq!(p1.params, params(&[("charset", "utf-8")]));
    assert_eq!(body(&raw, p1), "Caf=C3=A9 au lait, soft=\nbreak.");
    assert_eq!(
        header(&raw, p1),
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
    );
    assert_eq!(p1.lines, Some(2));
    let p2 = part(&a.body, &[2]);
    assert_eq!(p2.subtype, "html");
    assert!(body(&raw, p2).starts_with("<html>") && body(&raw, p2).ends_with("</html>"));
    // Decoded QP with soft line break, HTML without tags or style content.
    assert!(a.search.body.contains("Café au lait, softbreak."));
    assert!(a.search.body.contains("Hello HTML world"));
    assert!(!a.search.body.contains("<b>"));
    assert!(!a.search.body.contains("color"));
    assert!(!a.search.body.contains("preamble") && !a.search.body.contains("epilogue"));
}

#[test]
fn encoded_words() {
    let (raw, a) = run("encoded_words.eml");
    // ENVELOPE keeps encoded words.
    assert_eq!(
        a.envelope.from[0].name.as_deref(),
        Some("=?iso-8859-1?q?Andr=E9?= Pirard")
    );
    assert!(
        a.envelope
            .subject
            .as_deref()
            .unwrap_or("")
            .starts_with("=?iso-8859-1?q?caf=E9?=")
    );
    // The cache and the search text decode them (Q and B, latin-1 and UTF-8).
    assert_eq!(
        a.headers.subject.as_deref(),
        Some("café日本語 and naïve text")
    );
    assert_eq!(a.headers.from_display.as_deref(), Some("André Pirard"));
    assert_eq!(a.headers.date, Some(1_707_152_400));
    assert!(a.search.headers.contains("To: Иван <ivan@example.ru>"));
    assert_eq!(a.body.encoding, "BASE64");
    assert!(body(&raw, &a.body).starts_with("0J/RgNC4"));
    assert!(a.search.body.contains("Привет, мир! Grüße."));
}

#[test]
fn rfc2231_parameters() {
    let (raw, a) = run("rfc2231.eml");
    let att = part(&a.body, &[2]);
    assert_eq!(
        (att.content_type.as_str(), att.subtype.as_str()),
        ("application", "octet-stream")
    );
    assert_eq!(att.param("name"), Some("€ rates report.txt"));
    assert_eq!(att.param("title"), Some("café"));
    assert_eq!(
        att.disposition,
        Some((
            "attachment".into(),
            params(&[("filename", "long file name.txt")])
        ))
    );
    assert_eq!(att.file_name(), Some("long file name.txt"));
    assert_eq!(body(&raw, att), "aGVsbG8=");
    assert_eq!(att.size, 8);
    assert_eq!(att.lines, None);
    assert!(a.search.body.contains("long file name.txt"));
}

#[test]
fn utf8_headers() {
    let (raw, a) = run("utf8_headers.eml");
    assert_eq!(
        a.envelope.subject.as_deref(),
        Some("Grüße aus Köln – 日本語")
    );
    assert_eq!(
        a.envelope.from,
        vec![addr(Some("Jörg Müller"), "jörg", "bücher.example")]
    );
    assert_eq!(
        a.envelope.to,
        vec![addr(Some("山田"), "yamada", "example.jp")]
    );
    assert_eq!(a.headers.from, vec!["jörg@bücher.example"]);
    assert_eq!(a.headers.message_id.as_deref(), Some("ütf8@example.org"));
    assert_eq!(a.body.encoding, "8BIT");
    assert_eq!(body(&raw, &a.body), "Schöne Grüße, 日本語のテキスト.\r\n");
    assert!(a.search.body.contains("日本語のテキスト"));
}

#[test]
fn nested_rfc822() {
    let (raw, a) = run("nested_rfc822.eml");
    assert_eq!(a.body.children.len(), 2);
    let m = part(&a.body, &[2]);
    assert_eq!(
        (m.content_type.as_str(), m.subtype.as_str()),
        ("message", "rfc822")
    );
    assert_eq!(m.disposition, Some(("inline".into(), vec![])));
    let (env, inner) = m.message.as_deref().expect("encapsulated message");
    assert_eq!(env.subject.as_deref(), Some("inner subject"));
    assert_eq!(
        env.from,
        vec![addr(Some("Inner Sender"), "inner", "example.net")]
    );
    assert_eq!(env.message_id.as_deref(), Some("<inner@example.net>"));
    // BODY[2] is the whole encapsulated message, BODY[2.HEADER] its header.
    assert!(body(&raw, m).starts_with("From: Inner Sender"));
    assert!(body(&raw, m).ends_with("--inner--\r\n"));
    assert_eq!(m.lines, Some(16));
    assert_eq!(inner.header_range.0, m.body_range.0);
    assert!(header(&raw, inner).ends_with("boundary=\"inner\"\r\n\r\n"));
    assert_eq!(inner.subtype, "alternative");
    // BODY[2.1] and BODY[2.2] address the inner parts.
    assert_eq!(body(&raw, part(&a.body, &[2, 1])), "inner plain text");
    assert_eq!(body(&raw, part(&a.body, &[2, 2])), "<p>inner html</p>");
    assert_eq!(
        header(&raw, part(&a.body, &[2, 2])),
        "Content-Type: text/html\r\n\r\n"
    );
    assert!(a.search.body.contains("inner subject"));
    assert!(a.search.body.contains("inner html"));
}

#[test]
fn missing_close_boundary() {
    let (raw, a) = run("missing_close_boundary.eml");
    assert_eq!(a.body.children.len(), 2);
    assert_eq!(body(&raw, part(&a.body, &[1])), "first part");
    // The last part runs to the end of the message.
    assert_eq!(
        body(&raw, part(&a.body, &[2])),
        "second part never closed\n"
    );
    assert!(!a.truncated);
}

#[test]
fn missing_boundary_parameter() {
    let (raw, a) = run("missing_boundary_param.eml");
    // Cannot be split: reported as a text part, content still indexed.
    assert_eq!(
        (a.body.content_type.as_str(), a.body.subtype.as_str()),
        ("text", "plain")
    );
    assert!(a.body.children.is_empty());
    assert!(body(&raw, &a.body).starts_with("--whatever\n"));
    assert!(a.search.body.contains("body text still searchable"));
}

#[test]
fn attachments() {
    let (raw, a) = run("attachments.eml");
    assert_eq!(a.body.param("boundary"), Some("----=_Part_1"));
    assert_eq!(a.body.children.len(), 3);
    assert_eq!(
        body(&raw, part(&a.body, &[1])),
        "Please find the quarterly numbers attached."
    );
    let img = part(&a.body, &[2]);
    assert_eq!(
        (img.content_type.as_str(), img.subtype.as_str()),
        ("image", "png")
    );
    assert_eq!(img.encoding, "BASE64");
    assert_eq!(img.id.as_deref(), Some("<chart@example.org>"));
    assert_eq!(
        img.description.as_deref(),
        Some("=?utf-8?q?Graphique_=C3=A9t=C3=A9?=")
    );
    assert_eq!(img.md5.as_deref(), Some("Q2hlY2sgSW50ZWdyaXR5IQ=="));
    assert_eq!(img.language, vec!["en", "fr"]);
    assert_eq!(
        img.location.as_deref(),
        Some("http://example.org/chart.png")
    );
    assert_eq!(
        img.disposition,
        Some((
            "attachment".into(),
            params(&[("filename", "chart.png"), ("size", "256")])
        ))
    );
    assert!(body(&raw, img).starts_with("AAECAwQF"));
    assert!(body(&raw, img).ends_with("/w=="));
    assert_eq!(img.size, img.body_range.1 - img.body_range.0);
    let pdf = part(&a.body, &[3]);
    assert_eq!(pdf.param("name"), Some("notes.pdf"));
    assert_eq!(body(&raw, pdf), "%PDF-1.4 fake");
    assert!(a.search.body.contains("chart.png"));
    assert!(a.search.body.contains("notes.pdf"));
    // Binary attachments are not indexed as text.
    assert!(!a.search.body.contains("AAECAwQF"));
    assert!(!a.search.body.contains("%PDF"));
}

#[test]
fn malformed() {
    let (raw, a) = run("malformed.eml");
    // Invalid Content-Type: RFC 2045 §5.2 default.
    assert_eq!(a.body.content_type, "text");
    assert_eq!(a.body.params, params(&[("charset", "us-ascii")]));
    assert_eq!(a.envelope.from[0].name.as_deref(), Some("broken"));
    assert!(
        a.envelope
            .subject
            .as_deref()
            .unwrap_or("")
            .starts_with("malformed")
    );
    assert!(a.headers.from.is_empty());
    // Invalid base64: raw text indexed rather than nothing.
    assert!(a.search.body.contains("not base64"));
    assert_eq!(body(&raw, &a.body), "!!!! not base64 @@@@\n");
}

#[test]
fn digest_defaults_to_rfc822() {
    let (raw, a) = run("digest.eml");
    let first = part(&a.body, &[1]);
    assert_eq!(
        (first.content_type.as_str(), first.subtype.as_str()),
        ("message", "rfc822")
    );
    let (env, _) = first.message.as_deref().expect("digest message");
    assert_eq!(env.subject.as_deref(), Some("first"));
    assert_eq!(header(&raw, first), "\n");
    assert_eq!(body(&raw, part(&a.body, &[1, 1])), "first body");
    let second = part(&a.body, &[2]);
    assert_eq!(second.content_type, "text");
    assert!(second.message.is_none());
}

#[test]
fn latin1_body() {
    let (_, a) = run("latin1_body.eml");
    assert_eq!(a.body.param("charset"), Some("iso-8859-1"));
    assert!(a.search.body.contains("Voilà un café crème."));
}

#[test]
fn headers_only() {
    let (raw, a) = run("headers_only.eml");
    assert_eq!(message::header_end(&raw), raw.len());
    assert_eq!(a.body.size, 0);
    assert_eq!(a.body.header_range, (0, raw.len() as u64));
    assert_eq!(a.body.lines, Some(0));
    assert!(
        a.search
            .headers
            .contains("X-Last: no blank line after me\n")
    );
}

fn all_parts(p: &BodyPart, out: &mut Vec<BodyPart>) {
    out.push(p.clone());
    for c in &p.children {
        all_parts(c, out);
    }
    if let Some(m) = &p.message {
        all_parts(&m.1, out);
    }
}

fn depth(p: &BodyPart) -> usize {
    let c = p.children.iter().map(depth).max().unwrap_or(0);
    let m = p.message.as_ref().map_or(0, |m| depth(&m.1));
    1 + c.max(m)
}

/// Ranges are well formed for every part of every corpus message, and the JSON
/// round trip gives back the same analysis.
#[test]
fn invariants_and_serde_round_trip() {
    let mut count = 0;
    for entry in std::fs::read_dir(corpus_dir()).expect("corpus dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "eml") {
            continue;
        }
        count += 1;
        let raw = std::fs::read(&path).expect("read");
        let a = analyze(&raw, &Limits::default());
        let mut parts = Vec::new();
        all_parts(&a.body, &mut parts);
        for p in &parts {
            assert!(p.header_range.0 <= p.header_range.1, "{path:?}");
            assert_eq!(p.header_range.1, p.body_range.0, "{path:?}");
            assert!(p.body_range.1 as usize <= raw.len(), "{path:?}");
            assert_eq!(p.size, p.body_range.1 - p.body_range.0);
            assert_eq!(p.content_type == "multipart", !p.children.is_empty());
        }
        let json = serde_json::to_string(&a).expect("serialize");
        let back: Analysis = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, a, "{path:?}");
    }
    assert!(count >= 12, "corpus has {count} files");
}

fn nested_multipart(levels: usize) -> Vec<u8> {
    let mut s = String::from("From: a@example.org\r\nSubject: deep\r\n");
    for i in 0..levels {
        s.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    s.push_str("Content-Type: text/plain\r\n\r\ndeepest text\r\n");
    for i in (0..levels).rev() {
        s.push_str(&format!("--b{i}--\r\n"));
    }
    s.into_bytes()
}

#[test]
fn depth_limit_multipart() {
    let raw = nested_multipart(80);
    let a = analyze_unguarded(&raw, &Limits::default());
    assert!(a.truncated);
    assert_eq!(depth(&a.body), message::DEFAULT_MAX_DEPTH + 1);
    // Within the limit nothing is cut and the deepest text is reached.
    let ok = nested_multipart(10);
    let b = analyze_unguarded(&ok, &Limits::default());
    assert!(!b.truncated);
    assert_eq!(depth(&b.body), 11);
    assert!(b.search.body.contains("deepest text"));
    // The deepest tree still survives the JSON round trip (serde_json depth limit).
    let json = serde_json::to_string(&a).expect("serialize");
    let back: Analysis = serde_json::from_str(&json).expect("deserialize deep");
    assert_eq!(back, a);
}

#[test]
fn depth_limit_rfc822_chain_at_ceiling() {
    let mut s = String::new();
    for i in 0..100 {
        s.push_str(&format!(
            "Subject: level {i}\r\nContent-Type: message/rfc822\r\n\r\n"
        ));
    }
    s.push_str("Subject: bottom\r\n\r\nbottom text\r\n");
    let limits = Limits {
        max_depth: 1000, // capped at MAX_DEPTH_CEILING
        ..Limits::default()
    };
    let a = analyze_unguarded(s.as_bytes(), &limits);
    assert!(a.truncated);
    assert_eq!(depth(&a.body), message::MAX_DEPTH_CEILING + 1);
    let json = serde_json::to_string(&a).expect("serialize");
    let back: Analysis = serde_json::from_str(&json).expect("deserialize at ceiling");
    assert_eq!(back, a);
}

#[test]
fn part_count_limit() {
    let mut s = String::from("Content-Type: multipart/mixed; boundary=m\r\n\r\n");
    for i in 0..2500 {
        s.push_str(&format!(
            "--m\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    s.push_str("--m--\r\n");
    let a = analyze_unguarded(s.as_bytes(), &Limits::default());
    assert!(a.truncated);
    let mut parts = Vec::new();
    all_parts(&a.body, &mut parts);
    assert_eq!(parts.len(), message::DEFAULT_MAX_PARTS);
    let last = a.body.children.last().expect("children");
    assert_eq!(last.body_bytes(s.as_bytes()), b"part 1998");

    let small = Limits {
        max_parts: 3,
        ..Limits::default()
    };
    let b = analyze_unguarded(s.as_bytes(), &small);
    assert_eq!(b.body.children.len(), 2);
    assert!(b.truncated);
}

#[test]
fn huge_header() {
    let mut s = String::from("From: a@example.org\r\nX-Big: start\r\n");
    while s.len() < 1_200_000 {
        s.push_str(" folded continuation line of a very large header field\r\n");
    }
    s.push_str("Subject: after the big header\r\n\r\nbody after huge header\r\n");
    let raw = s.into_bytes();
    let a = analyze_unguarded(&raw, &Limits::default());
    assert!(a.truncated);
    // Fields past the header limit are not parsed, fields before it are.
    assert_eq!(a.envelope.subject, None);
    assert_eq!(a.headers.from, vec!["a@example.org"]);
    // Ranges still describe the real message.
    assert_eq!(a.body.body_bytes(&raw), b"body after huge header\r\n");
    assert!(a.search.headers.len() <= message::DEFAULT_MAX_SEARCH_TEXT);
    assert!(a.search.body.contains("body after huge header"));
}

#[test]
fn search_text_is_bounded() {
    let mut s = String::from("Subject: big\r\nContent-Type: text/plain\r\n\r\n");
    for _ in 0..100_000 {
        s.push_str("lorem ipsum dolor sit amet é\r\n");
    }
    let limits = Limits {
        max_search_text: 10_000,
        ..Limits::default()
    };
    let a = analyze_unguarded(s.as_bytes(), &limits);
    assert!(a.truncated);
    assert!(a.search.headers.len() + a.search.body.len() <= 10_000);
    assert!(a.search.body.len() > 9_000);
}

/// Deterministic xorshift, so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn check_robust(raw: &[u8]) {
    let a = analyze_unguarded(raw, &Limits::default());
    let mut parts = Vec::new();
    all_parts(&a.body, &mut parts);
    for p in &parts {
        assert!(p.header_range.0 <= p.header_range.1);
        assert!(p.body_range.0 <= p.body_range.1);
        assert!(p.body_range.1 as usize <= raw.len());
    }
}

#[test]
fn every_prefix_never_panics() {
    for entry in std::fs::read_dir(corpus_dir()).expect("corpus dir") {
        let raw = std::fs::read(entry.expect("entry").path()).expect("read");
        for len in 0..=raw.len() {
            check_robust(&raw[..len]);
        }
    }
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let interesting: &[&[u8]] = &[
        b"\r\n",
        b"\n",
        b"--",
        b"=?",
        b"?=",
        b"\"",
        b"(",
        b"<",
        b":",
        b";",
        b"*0*=",
        b"'",
        b"\xff",
        b"\xc3",
        b"=",
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\n",
    ];
    for entry in std::fs::read_dir(corpus_dir()).expect("corpus dir") {
        let raw = std::fs::read(entry.expect("entry").path()).expect("read");
        for _ in 0..300 {
            let mut m = raw.clone();
            for _ in 0..1 + rng.below(4) {
                let pos = rng.below(m.len() + 1);
                match rng.below(3) {
                    0 => {
                        let ins = interesting[rng.below(interesting.len())];
                        m.splice(pos..pos, ins.iter().copied());
                    }
                    1 if pos < m.len() => {
                        let end = (pos + rng.below(20)).min(m.len());
                        m.drain(pos..end);
                    }
                    _ if pos < m.len() => m[pos] = rng.next() as u8,
                    _ => {}
                }
            }
            check_robust(&m);
        }
    }
}
