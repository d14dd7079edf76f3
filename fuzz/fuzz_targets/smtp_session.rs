//! A whole SMTP session fed arbitrary bytes in arbitrary chunks, in each service (MX, submission,
//! LMTP) and TLS state, with a backend that accepts everything (so the fuzzer reaches the
//! authenticated, in-transaction and in-data states). Properties: no panic; every reply line is
//! `ddd` + space or dash + text + CRLF; nothing is processed after the session closed.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use libfuzzer_sys::fuzz_target;
use net::stream::TlsInfo;
use smtp::backend::{AuthOutcome, AuthUser, Backend, Envelope, Mode, RcptTarget};
use smtp::reply::Reply;
use smtp::session::{Event, Session, SessionInfo};
use smtp::spool::MessageData;
use smtp::SmtpConfig;

struct Accept;

#[async_trait]
impl Backend for Accept {
    async fn authenticate(&self, _: Option<IpAddr>, user: &str, _: &str) -> AuthOutcome {
        AuthOutcome::Ok(AuthUser { account_id: 1, address: user.to_string() })
    }
    async fn check_sender(&self, _: Option<&AuthUser>, _: Option<&str>, _: Mode) -> Result<(), Reply> {
        Ok(())
    }
    async fn check_recipient(&self, _: Mode, _: Option<&AuthUser>, _: &str, _: &str, _: bool) -> Result<RcptTarget, Reply> {
        Ok(RcptTarget { local: vec![1], external: vec![] })
    }
    async fn deliver(&self, env: &Envelope, _: MessageData) -> Vec<Result<(), Reply>> {
        vec![Ok(()); env.recipients.len()]
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("runtime"))
}

fn check_replies(bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let end = rest.windows(2).position(|w| w == b"\r\n").expect("reply line without CRLF");
        let line = &rest[..end];
        assert!(line.len() >= 3 && line[..3].iter().all(u8::is_ascii_digit), "bad reply line {line:?}");
        assert!(line.len() == 3 || line[3] == b' ' || line[3] == b'-', "bad separator in {line:?}");
        assert!(!line.contains(&b'\r') && !line.contains(&b'\n'));
        rest = &rest[end + 2..];
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else { return };
    let mode = match ctl % 3 {
        0 => Mode::Mx,
        1 => Mode::Submission,
        _ => Mode::Lmtp,
    };
    let tls = (ctl & 4 != 0).then(|| TlsInfo { version: "TLSv1.3".into(), cipher: "TEST".into() });
    let mut cfg = SmtpConfig::default();
    cfg.max_message_size = 4096;
    cfg.max_recipients = 5;
    if ctl & 8 != 0 {
        cfg.bare_newline = smtp::BareNewline::Normalize;
    }
    let info = SessionInfo { mode, peer: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), starttls: tls.is_none(), tls };
    let mut session = Session::new(Arc::new(cfg), Arc::new(Accept), info);
    check_replies(&session.greeting());
    // Chunk sizes come from the control byte, so the fuzzer explores splits inside lines and CRLFs.
    let chunk = 1 + usize::from(ctl >> 4) * 7;
    runtime().block_on(async {
        for piece in input.chunks(chunk) {
            let out = session.feed(piece).await;
            check_replies(&out.reply);
            match out.event {
                Some(Event::Close) => {
                    assert!(session.is_closed());
                    let after = session.feed(b"NOOP\r\n").await;
                    assert!(after.reply.is_empty(), "replied after close");
                    return;
                }
                Some(Event::StartTls) => {
                    session.tls_started(TlsInfo { version: "TLSv1.3".into(), cipher: "TEST".into() })
                }
                None => {}
            }
        }
    });
});
