//! A first end-to-end check of the SMTP listeners with Python's smtplib (a client we did not write).

mod common;

use std::process::Command;

fn python(script: &str) -> (bool, String) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("python3");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn smtplib_mx_and_submission_deliver_durably() {
    let server = common::Server::start("example.com");
    server.add_account("alice@example.com", "alice-password-1");
    let mx = server.addr("smtp");
    let sub = server.addr("submission");
    let script = format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", {mx_port})
code, caps = s.ehlo("client.test")
assert code == 250 and b"STARTTLS" in caps and b"AUTH" not in caps, caps
s.sendmail("sender@far.test", ["Alice@Example.com"], b"Subject: from the internet\r\n\r\nhello\r\n")
try:
    s.sendmail("sender@far.test", ["someone@elsewhere.test"], b"Subject: relay\r\n\r\nx\r\n")
    raise SystemExit("relayed!")
except smtplib.SMTPRecipientsRefused as e:
    assert e.recipients["someone@elsewhere.test"][0] == 554, e.recipients
s.quit()
t = smtplib.SMTP("127.0.0.1", {sub_port})
t.ehlo("client.test")
try:
    t.login("alice@example.com", "alice-password-1")
    raise SystemExit("AUTH before TLS accepted")
except smtplib.SMTPException:
    pass
t.starttls(context=ctx)
t.ehlo("client.test")
t.login("alice@example.com", "alice-password-1")
t.sendmail("alice@example.com", ["alice@example.com", "bob@far.test"], b"Subject: sent\r\n\r\nsubmitted\r\n")
t.quit()
print("ok")
"#,
        mx_port = mx.port(),
        sub_port = sub.port()
    );
    let (ok, out) = python(&script);
    assert!(ok, "{out}");
    let store = server.store();
    let msgs = common::inbox(&store, "alice@example.com").await;
    assert_eq!(msgs.len(), 2, "both messages in alice's INBOX");
    let first = String::from_utf8_lossy(&msgs[0]);
    assert!(
        first.starts_with(
            "Return-Path: <sender@far.test>\r\nX-Spam-Status: No, score=0.0 required=5.0\r\n\
             \ttests=BAYES_UNTRAINED\r\nX-Spam-Score: 0.0\r\nReceived: from client.test ([127.0.0.1])"
        ),
        "{first}"
    );
    assert!(first.ends_with("\r\n\r\nhello\r\n"));
    let second = String::from_utf8_lossy(&msgs[1]);
    assert!(
        second.contains("with ESMTPSA") && second.contains("authenticated as alice@example.com"),
        "{second}"
    );
    assert!(
        second.contains("\r\nMessage-ID: <") && second.contains("\r\nDate: "),
        "submission adds Message-ID and Date: {second}"
    );
    let queue = store.queue_list().await.expect("queue");
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].recipients[0].address, "bob@far.test");
    assert_eq!(queue[0].sender, "alice@example.com");
}
