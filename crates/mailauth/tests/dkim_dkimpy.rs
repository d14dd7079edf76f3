//! Our DKIM signatures checked by an independent verifier: Python's dkimpy (installed by
//! scripts/test.sh, with PyNaCl for Ed25519), fed our TXT record through its `dnsfunc` hook, so
//! no DNS server is involved.

use std::process::Command;

use mailauth::{DkimAlgorithm, DkimKey};

const VERIFY_PY: &str = r#"
import sys, dkim
msg = open(sys.argv[1], 'rb').read()
txt = open(sys.argv[2], 'rb').read()
def dnsfunc(name, timeout=5):
    return txt if name == b'sel._domainkey.example.org.' else None
print('pass' if dkim.verify(msg, dnsfunc=dnsfunc) else 'fail')
"#;

const MESSAGE: &str = "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\n\
    Subject: Quarterly   report\r\nDate: Mon, 6 Jan 2025 10:00:00 +0000\r\n\
    Message-ID: <q1@example.org>\r\nMIME-Version: 1.0\r\n\
    Content-Type: text/plain; charset=utf-8\r\n\r\nFigures attached.  \r\n\r\n\r\n";

fn dkimpy(key: &DkimKey, signed: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let msg = dir.path().join("msg.eml");
    let txt = dir.path().join("record.txt");
    std::fs::write(&msg, signed).unwrap();
    std::fs::write(&txt, key.dns_txt_record()).unwrap();
    let out = Command::new("python3")
        .arg("-c")
        .arg(VERIFY_PY)
        .arg(&msg)
        .arg(&txt)
        .output()
        .expect("python3 (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "dkimpy failed (scripts/test.sh installs dkimpy and pynacl): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn sign(key: &DkimKey, raw: &str) -> Vec<u8> {
    let mut out = key
        .sign(raw.as_bytes(), "example.org", "sel")
        .unwrap()
        .into_bytes();
    out.extend_from_slice(raw.as_bytes());
    out
}

#[test]
fn dkimpy_verifies_our_signatures() {
    for alg in [DkimAlgorithm::Ed25519, DkimAlgorithm::Rsa] {
        let key = DkimKey::generate(alg).unwrap();
        let signed = sign(&key, MESSAGE);
        assert_eq!(dkimpy(&key, &signed), "pass", "{alg}");

        // Relaxed canonicalisation: whitespace changes in transit do not matter...
        let reflowed = String::from_utf8(signed.clone())
            .unwrap()
            .replace("Subject: Quarterly   report", "Subject:  Quarterly report")
            .replace("attached.  \r\n\r\n\r\n", "attached.\r\n");
        assert_eq!(dkimpy(&key, reflowed.as_bytes()), "pass", "{alg} reflowed");

        // ...but content does.
        let tampered = String::from_utf8(signed.clone())
            .unwrap()
            .replace("Figures", "Numbers");
        assert_eq!(dkimpy(&key, tampered.as_bytes()), "fail", "{alg} body");

        // From is over-signed: a second From makes the signature fail.
        let extra_from = format!(
            "From: Mallory <m@example.org>\r\n{}",
            String::from_utf8(signed).unwrap()
        );
        assert_eq!(
            dkimpy(&key, extra_from.as_bytes()),
            "fail",
            "{alg} added From"
        );
    }
}

#[test]
fn dkimpy_verifies_a_key_reloaded_from_pem() {
    let key = DkimKey::generate(DkimAlgorithm::Rsa).unwrap();
    let reloaded = DkimKey::from_pkcs8_pem(&key.to_pkcs8_pem()).unwrap();
    let signed = sign(&reloaded, MESSAGE);
    assert_eq!(dkimpy(&key, &signed), "pass");
}
