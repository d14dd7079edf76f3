//! BINARY (RFC 3516): FETCH BINARY[...], BINARY.PEEK, BINARY.SIZE, UNKNOWN-CTE, \Seen, and
//! APPEND of a literal8.

use super::{fixture, run};
use crate::backend::MailBackend;
use crate::session::Session;

/// Feeds raw bytes (messages here hold NUL and 8-bit bytes).
async fn feed(s: &mut Session<MailBackend>, bytes: &[u8]) -> Vec<u8> {
    s.feed(bytes).await.bytes
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Part 1 quoted-printable text, part 2 base64 with NUL bytes, part 3 8bit Latin-1, part 4 an
/// encapsulated message whose body is base64.
const MIXED: &[u8] = b"From: a@example.com\r\nSubject: bin\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"xx\"\r\n\r\n\
--xx\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
caf=C3=A9 soft=\r\nbreak\r\n\
--xx\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n\
AAECAwBo\r\nZWxsbw==\r\n\
--xx\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
na\xefve\r\n\
--xx\r\nContent-Type: message/rfc822\r\n\r\n\
Subject: inner\r\nContent-Transfer-Encoding: base64\r\n\r\naW5uZXI=\r\n\
--xx--\r\n";

const UUENCODED: &[u8] = b"Subject: uu\r\nMIME-Version: 1.0\r\n\
Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n\
begin 644 f\r\n#86)C\r\n`\r\nend\r\n";

/// A logged-in session with MIXED (UID 1) and UUENCODED (UID 2) in INBOX, selected.
async fn setup() -> (super::Fixture, Session<MailBackend>) {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    for m in [MIXED, UUENCODED] {
        let mut cmd = format!("ap APPEND INBOX {{{}+}}\r\n", m.len()).into_bytes();
        cmd.extend_from_slice(m);
        cmd.extend_from_slice(b"\r\n");
        let r = feed(&mut s, &cmd).await;
        assert!(contains(&r, b"ap OK [APPENDUID"), "{}", show(&r));
    }
    let r = run(&mut s, "s SELECT INBOX\r\n").await;
    assert!(r.contains("* 2 EXISTS"), "{r}");
    (f, s)
}

#[tokio::test]
async fn capability_is_advertised_after_login() {
    let f = fixture().await;
    let mut s = f.session(true);
    let r = run(&mut s, "a CAPABILITY\r\n").await;
    assert!(!r.contains("BINARY"), "{r}");
    let mut s = f.logged_in().await;
    let r = run(&mut s, "a CAPABILITY\r\n").await;
    assert!(r.contains(" BINARY ") && r.contains(" MULTIAPPEND "), "{r}");
}

#[tokio::test]
async fn decodes_quoted_printable_base64_and_8bit() {
    let (_f, mut s) = setup().await;
    let r = feed(&mut s, b"a FETCH 1 (BINARY.PEEK[1])\r\n").await;
    assert!(
        contains(
            &r,
            "* 1 FETCH (BINARY[1] {15}\r\ncafé softbreak)\r\n".as_bytes()
        ),
        "{}",
        show(&r)
    );
    // NUL in the decoded data: a literal8.
    let r = feed(&mut s, b"b FETCH 1 (BINARY.PEEK[2])\r\n").await;
    assert!(
        contains(
            &r,
            b"* 1 FETCH (BINARY[2] ~{10}\r\n\0\x01\x02\x03\0hello)\r\n"
        ),
        "{}",
        show(&r)
    );
    // 8-bit without NUL: a plain literal, bytes unchanged.
    let r = feed(&mut s, b"c UID FETCH 1 (BINARY.PEEK[3])\r\n").await;
    assert!(
        contains(&r, b"* 1 FETCH (UID 1 BINARY[3] {5}\r\nna\xefve)\r\n"),
        "{}",
        show(&r)
    );
    // The encapsulated message as stored; its own part decoded.
    let r = feed(&mut s, b"d FETCH 1 (BINARY.PEEK[4] BINARY.PEEK[4.1])\r\n").await;
    let inner: &[u8] = b"Subject: inner\r\nContent-Transfer-Encoding: base64\r\n\r\naW5uZXI=";
    let mut want = format!("BINARY[4] {{{}}}\r\n", inner.len()).into_bytes();
    want.extend_from_slice(inner);
    want.extend_from_slice(b" BINARY[4.1] {5}\r\ninner)");
    assert!(contains(&r, &want), "{}", show(&r));
    // BINARY[] is the whole message as stored; a missing part is empty.
    let r = feed(&mut s, b"e FETCH 1 (BINARY.PEEK[] BINARY.PEEK[9])\r\n").await;
    let mut want = format!("BINARY[] {{{}}}\r\n", MIXED.len()).into_bytes();
    want.extend_from_slice(MIXED);
    want.extend_from_slice(b" BINARY[9] {0}\r\n)");
    assert!(contains(&r, &want), "{}", show(&r));
    assert!(contains(&r, b"e OK"), "{}", show(&r));
}

#[tokio::test]
async fn partial_ranges_count_decoded_bytes() {
    let (_f, mut s) = setup().await;
    let r = feed(&mut s, b"a FETCH 1 (BINARY.PEEK[2]<5.3>)\r\n").await;
    assert!(
        contains(&r, b"* 1 FETCH (BINARY[2]<5> {3}\r\nhel)\r\n"),
        "{}",
        show(&r)
    );
    let r = feed(&mut s, b"b FETCH 1 (BINARY.PEEK[2]<3.4>)\r\n").await;
    assert!(
        contains(&r, b"* 1 FETCH (BINARY[2]<3> ~{4}\r\n\x03\0he)\r\n"),
        "{}",
        show(&r)
    );
    let r = feed(&mut s, b"c FETCH 1 (BINARY.PEEK[1]<100.5>)\r\n").await;
    assert!(
        contains(&r, b"* 1 FETCH (BINARY[1]<100> {0}\r\n)\r\n"),
        "{}",
        show(&r)
    );
}

/// The length announced by `BINARY[<spec>] {n}` or `~{n}` in `r`.
fn literal_len(r: &[u8], spec: &str) -> usize {
    let key = format!("BINARY[{spec}] ");
    let s = show(r);
    let at = s.find(&key).expect("BINARY item") + key.len();
    let rest = s[at..].trim_start_matches('~');
    rest[1..rest.find('}').expect("}")].parse().expect("length")
}

fn size_value(r: &[u8], spec: &str) -> usize {
    let key = format!("BINARY.SIZE[{spec}] ");
    let s = show(r);
    let at = s.find(&key).expect("BINARY.SIZE item") + key.len();
    s[at..]
        .split([' ', ')'])
        .next()
        .and_then(|v| v.parse().ok())
        .expect("number")
}

#[tokio::test]
async fn binary_size_is_the_length_of_binary() {
    let (_f, mut s) = setup().await;
    for spec in ["", "1", "2", "3", "4", "4.1", "9"] {
        let r = feed(
            &mut s,
            format!("a FETCH 1 (BINARY.SIZE[{spec}] BINARY.PEEK[{spec}])\r\n").as_bytes(),
        )
        .await;
        assert_eq!(
            size_value(&r, spec),
            literal_len(&r, spec),
            "{spec}: {}",
            show(&r)
        );
    }
    let r = feed(&mut s, b"b FETCH 1 (BINARY.SIZE[] RFC822.SIZE)\r\n").await;
    assert!(
        contains(
            &r,
            format!("BINARY.SIZE[] {} RFC822.SIZE {}", MIXED.len(), MIXED.len()).as_bytes()
        ),
        "{}",
        show(&r)
    );
}

#[tokio::test]
async fn unknown_encoding_answers_unknown_cte_and_sends_nothing() {
    let (_f, mut s) = setup().await;
    for cmd in [
        "a FETCH 2 (BINARY.PEEK[1])\r\n",
        "b FETCH 2 (BINARY.SIZE[1])\r\n",
        "c FETCH 2 (BINARY.PEEK[])\r\n",
    ] {
        let r = run(&mut s, cmd).await;
        if cmd.contains("[]") {
            // The whole message is sent as stored: no encoding to remove.
            assert!(r.contains("c OK"), "{r}");
        } else {
            assert!(r.contains(" NO [UNKNOWN-CTE] "), "{r}");
            assert!(!r.contains("* 2 FETCH"), "{r}");
        }
    }
    // The check comes before anything is sent or flagged: message 1 stays unseen.
    let r = run(&mut s, "d FETCH 1:2 (BINARY[1])\r\n").await;
    assert!(r.starts_with("d NO [UNKNOWN-CTE]"), "{r}");
    let r = run(&mut s, "e FETCH 1:2 (FLAGS)\r\n").await;
    assert!(
        r.contains("* 1 FETCH (FLAGS (\\Recent))") && r.contains("* 2 FETCH (FLAGS (\\Recent))"),
        "{r}"
    );
    // BODY[] still serves the part as stored.
    let r = run(&mut s, "f FETCH 2 (BODY.PEEK[1])\r\n").await;
    assert!(r.contains("begin 644 f") && r.contains("f OK"), "{r}");
}

#[tokio::test]
async fn binary_sets_seen_and_peek_does_not() {
    let (_f, mut s) = setup().await;
    let r = run(&mut s, "a FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[2])\r\n").await;
    assert!(!r.contains("\\Seen"), "{r}");
    let r = run(&mut s, "b FETCH 1 (FLAGS)\r\n").await;
    assert!(r.contains("* 1 FETCH (FLAGS (\\Recent))"), "{r}");
    let r = run(&mut s, "c FETCH 1 (BINARY[1])\r\n").await;
    assert!(r.contains(" FLAGS (\\Recent \\Seen))"), "{r}");
    let r = run(&mut s, "d FETCH 1 (FLAGS)\r\n").await;
    assert!(r.contains("* 1 FETCH (FLAGS (\\Recent \\Seen))"), "{r}");
    // EXAMINE is read-only: BINARY there sets nothing.
    run(&mut s, "e EXAMINE INBOX\r\n").await;
    let r = run(&mut s, "f FETCH 2 (BINARY[])\r\n").await;
    assert!(!r.contains("\\Seen") && r.contains("f OK"), "{r}");
}

#[tokio::test]
async fn append_accepts_literal8_with_nul() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    let m: &[u8] = b"Subject: raw\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n\0\x01\xff\0end\r\n";
    let r = feed(
        &mut s,
        format!("a APPEND INBOX (\\Flagged) ~{{{}}}\r\n", m.len()).as_bytes(),
    )
    .await;
    assert_eq!(show(&r), "+ Ready for literal data\r\n");
    let mut data = m.to_vec();
    data.extend_from_slice(b"\r\n");
    let r = show(&feed(&mut s, &data).await);
    assert!(
        r.starts_with("a OK [APPENDUID ") && r.contains(" 1] "),
        "{r}"
    );
    // Non-synchronizing literal8 (LITERAL+ with BINARY).
    let mut cmd = format!("b APPEND INBOX ~{{{}+}}\r\n", m.len()).into_bytes();
    cmd.extend_from_slice(&data);
    let r = show(&feed(&mut s, &cmd).await);
    assert!(
        r.starts_with("b OK [APPENDUID ") && r.contains(" 2] "),
        "{r}"
    );
    // A plain literal cannot carry NUL (RFC 9051 §4.3).
    let mut cmd = format!("c APPEND INBOX {{{}+}}\r\n", m.len()).into_bytes();
    cmd.extend_from_slice(&data);
    let r = show(&feed(&mut s, &cmd).await);
    assert!(r.starts_with("c BAD"), "{r}");

    run(&mut s, "s SELECT INBOX\r\n").await;
    // Stored as sent: BINARY[] gives the bytes back in a literal8.
    let r = feed(&mut s, b"d FETCH 1 (FLAGS BINARY.PEEK[])\r\n").await;
    let mut want = format!(
        "* 1 FETCH (FLAGS (\\Recent \\Flagged) BINARY[] ~{{{}}}\r\n",
        m.len()
    )
    .into_bytes();
    want.extend_from_slice(m);
    want.extend_from_slice(b")\r\n");
    assert!(contains(&r, &want), "{}", show(&r));
    let r = feed(&mut s, b"e FETCH 2 (BINARY.PEEK[1] BINARY.SIZE[1])\r\n").await;
    assert!(
        contains(
            &r,
            b"BINARY[1] ~{9}\r\n\0\x01\xff\0end\r\n BINARY.SIZE[1] 9)"
        ),
        "{}",
        show(&r)
    );
}
