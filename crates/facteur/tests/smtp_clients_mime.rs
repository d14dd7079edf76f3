//! A MIME message built by Python's `email` package (multipart/mixed: text and HTML alternatives,
//! a 200 KiB base64 attachment) sent with smtplib through submission and MX: the stored blob is
//! Return-Path + Received + exactly the bytes sent, it is a file on disk (over the inline limit),
//! and Python's parser gets the same attachment back out of it.

mod common;

use std::process::Command;

fn python(script: &str, env: &[(&str, String)]) -> String {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .expect("python3 is needed for these tests (scripts/test.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "python failed:\n{text}");
    text
}

/// Builds the message (deterministic: fixed seed) and writes it to $OUT/sent.eml.
const BUILD: &str = r#"
import os, random, email.utils
from email.message import EmailMessage
from email import policy
m = EmailMessage()
m["From"] = "Alice <alice@example.com>"
m["To"] = "Bob <bob@example.com>"
m["Subject"] = "Rapport annuel — pièces jointes"
m["Date"] = email.utils.formatdate(1767225600)
m["Message-ID"] = "<mime-round-trip@example.com>"
m.set_content("Bonjour Bob,\n.une ligne qui commence par un point\n..et deux\n\nAlice\n")
m.add_alternative("<html><body><p>Bonjour <b>Bob</b>,</p>\n<p>.point</p></body></html>\n", subtype="html")
data = random.Random(7).randbytes(200 * 1024)
m.add_attachment(data, maintype="application", subtype="octet-stream", filename="donnees.bin")
raw = m.as_bytes(policy=policy.SMTP)
assert raw.endswith(b"\r\n") and b"\r\n.une ligne" in raw
open(os.environ["OUT"] + "/sent.eml", "wb").write(raw)
"#;

const SEND: &str = r#"
import os, smtplib, ssl
raw = open(os.environ["OUT"] + "/sent.eml", "rb").read()
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", int(os.environ["P_SUB"]), timeout=60)
s.starttls(context=ctx); s.login("alice@example.com", "alice-password-1")
s.sendmail("alice@example.com", ["bob@example.com"], raw)
s.quit()
s = smtplib.SMTP("127.0.0.1", int(os.environ["P_MX"]), timeout=60)
s.sendmail("alice@example.com", ["bob@example.com"], raw)
s.quit()
"#;

/// Parses $OUT/stored.eml and checks every part against what was built.
const PARSE: &str = r#"
import os, random
from email import policy
from email.parser import BytesParser
m = BytesParser(policy=policy.default).parsebytes(open(os.environ["OUT"] + "/stored.eml", "rb").read())
assert m.get_content_type() == "multipart/mixed", m.get_content_type()
assert str(m["Subject"]) == "Rapport annuel — pièces jointes", str(m["Subject"])
text = m.get_body(("plain",)).get_content().replace("\r\n", "\n")
assert ".une ligne qui commence par un point\n..et deux\n" in text, repr(text)
html = m.get_body(("html",)).get_content()
assert "<p>.point</p>" in html, repr(html)
atts = list(m.iter_attachments())
assert len(atts) == 1 and atts[0].get_filename() == "donnees.bin", atts
assert atts[0].get_content() == random.Random(7).randbytes(200 * 1024), "attachment differs"
print("parsed ok")
"#;

#[tokio::test]
async fn mime_with_attachments_round_trips_byte_for_byte() {
    let server = common::Server::start("example.com");
    server.add_account("alice@example.com", "alice-password-1");
    server.add_account("bob@example.com", "bob-password-12");
    let out = server.dir.path().to_path_buf();
    let env = [
        ("OUT", out.display().to_string()),
        ("P_SUB", server.addr("submission").port().to_string()),
        ("P_MX", server.addr("smtp").port().to_string()),
    ];
    python(BUILD, &env);
    python(SEND, &env);
    let sent = std::fs::read(out.join("sent.eml")).expect("sent.eml");
    assert!(sent.len() > 270_000, "base64 of 200 KiB: {}", sent.len());

    let msgs = common::inbox(&server.store(), "bob@example.com").await;
    assert_eq!(msgs.len(), 2, "one via submission, one via MX");
    for (m, with) in msgs.iter().zip(["with ESMTPSA", "with ESMTP\r\n"]) {
        let body = common::strip_trace(m);
        let first_diff = body.iter().zip(&sent).position(|(a, b)| a != b);
        assert!(
            body == &sent[..],
            "stored {} bytes, sent {}; first difference at {first_diff:?}",
            body.len(),
            sent.len()
        );
        let head = String::from_utf8_lossy(&m[..m.len() - body.len()]).into_owned();
        assert!(
            head.contains(with.trim_end()) && head.contains("for <bob@example.com>"),
            "{head}"
        );
        // Over store.inline_blob_max (64 KiB): the blob is a file named by its hash.
        let id = store::BlobId::of(m).to_hex();
        let file = server.data().join("blobs").join(&id[..2]).join(&id);
        assert_eq!(
            std::fs::read(&file).expect("blob file"),
            *m,
            "{}",
            file.display()
        );
        std::fs::write(out.join("stored.eml"), m).expect("write stored.eml");
        let parsed = python(PARSE, &env);
        assert!(parsed.contains("parsed ok"), "{parsed}");
    }
}
