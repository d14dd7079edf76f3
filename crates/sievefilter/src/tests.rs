use super::*;

#[test]
fn compile_errors_name_line_and_column() {
    let e = Engine::new(Limits::default(), "mx.test");
    let err = e
        .compile(
            b"require \"fileinto\";\r\nif header :is \"x\" \"y\" {\r\n  fileinto \"a\"\r\n}\r\n",
        )
        .expect_err("missing semicolon");
    assert_eq!(err.line, 4, "{err}");
    let err = e
        .compile(b"require [\"fileinto\",\r\n \"enotify\"];\r\nkeep;\r\n")
        .expect_err("not offered");
    assert_eq!(err.line, 2, "{err}");
    assert!(err.message.contains("enotify"), "{err}");
    let err = e.compile(&vec![b' '; 70 * 1024]).expect_err("too large");
    assert!(err.message.contains("larger"), "{err}");
    let ok = e
        .compile(b"require [\"fileinto\", \"vacation\", \"imap4flags\"];\r\nkeep;\r\n")
        .expect("compiles");
    assert!(!ok.stored.is_empty());
}

#[test]
fn deep_nesting_and_many_rules_are_bounded() {
    let e = Engine::new(Limits::default(), "mx.test");
    let mut deep = String::new();
    for _ in 0..100 {
        deep.push_str("if true {");
    }
    deep.push_str("keep;");
    for _ in 0..100 {
        deep.push('}');
    }
    assert!(e.compile(deep.as_bytes()).is_err());
    let mut many = String::from("require \"fileinto\";\n");
    while many.len() < 60 * 1024 {
        many.push_str("if header :contains \"subject\" \"x\" { fileinto \"y\"; }\n");
    }
    e.compile(many.as_bytes()).expect("60 KiB of rules compile");
}

mod runs {
    use super::super::*;
    use std::sync::Arc;
    use store::{DynStore, NewAccount, NewSieveScript, SieveOwner};

    async fn setup() -> (tempfile::TempDir, DynStore, i64) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: DynStore =
            Arc::new(store::sqlite::Sqlite::open(dir.path(), Default::default()).expect("open"));
        let d = store.domain_create("example.test").await.expect("domain");
        let acc = store
            .account_create(NewAccount {
                domain_id: d.id,
                local_part: "me".into(),
                display_name: "Me".into(),
                password_hash: "x".into(),
                quota_bytes: None,
                quota_messages: None,
                mailboxes: vec![("INBOX".into(), None)],
            })
            .await
            .expect("account");
        (dir, store, acc.id)
    }

    async fn put(e: &Engine, store: &DynStore, owner: SieveOwner, name: &str, text: &str) {
        let c = e.compile(text.as_bytes()).expect("compiles");
        store
            .sieve_put(
                &NewSieveScript {
                    owner: owner.clone(),
                    name: name.into(),
                    content: text.as_bytes().to_vec(),
                    compiled: Some(c.stored),
                    compiled_format: COMPILED_FORMAT.into(),
                    now: 1,
                },
                None,
            )
            .await
            .expect("put");
        store
            .sieve_activate(&owner, Some(name))
            .await
            .expect("activate");
    }

    const MSG: &[u8] = b"From: Alice <alice@far.test>\r\nTo: me@example.test\r\nSubject: Report\r\nMessage-ID: <1@far.test>\r\n\r\nHello\r\n";

    fn env() -> Envelope<'static> {
        Envelope {
            from: "alice@far.test",
            to: "me+work@example.test",
            user: "me@example.test",
            user_name: "Me",
        }
    }

    #[tokio::test]
    async fn no_script_keeps_and_fileinto_files() {
        let (_d, store, acc) = setup().await;
        let e = Engine::new(Limits::default(), "mx.test");
        let out = e
            .run(&store, acc, "example.test", MSG, &env(), Verdict::default())
            .await;
        assert_eq!(out, Outcome::keep());
        put(
            &e,
            &store,
            SieveOwner::Account(acc),
            "main",
            "require [\"fileinto\", \"subaddress\", \"envelope\", \"imap4flags\"];\n\
             if envelope :detail \"to\" \"work\" { fileinto :flags \"\\\\Flagged\" \"Work\"; }",
        )
        .await;
        let out = e
            .run(&store, acc, "example.test", MSG, &env(), Verdict::default())
            .await;
        assert_eq!(out.error, None);
        assert_eq!(out.copies.len(), 1, "{out:?}");
        assert_eq!(out.copies[0].folder.as_deref(), Some("Work"));
        assert_eq!(out.copies[0].flags, vec!["\\Flagged".to_string()]);
    }

    #[tokio::test]
    async fn domain_runs_first_and_may_end_filtering() {
        let (_d, store, acc) = setup().await;
        let e = Engine::new(Limits::default(), "mx.test");
        put(
            &e,
            &store,
            SieveOwner::Account(acc),
            "u",
            "require \"fileinto\"; fileinto \"User\";",
        )
        .await;
        put(
            &e,
            &store,
            SieveOwner::Domain("example.test".into()),
            "d",
            "require [\"fileinto\", \"spamtest\", \"relational\", \"comparator-i;ascii-numeric\"];\n\
             if spamtest :value \"ge\" :comparator \"i;ascii-numeric\" \"5\" { fileinto \"Junk\"; }",
        )
        .await;
        let spam = Verdict {
            tested: true,
            score: 7.0,
            junk: false,
            virus: false,
        };
        let out = e.run(&store, acc, "example.test", MSG, &env(), spam).await;
        assert_eq!(
            out.copies
                .iter()
                .map(|c| c.folder.clone())
                .collect::<Vec<_>>(),
            vec![Some("Junk".into())]
        );
        let ham = Verdict {
            tested: true,
            score: 0.0,
            junk: false,
            virus: false,
        };
        let out = e.run(&store, acc, "example.test", MSG, &env(), ham).await;
        assert_eq!(
            out.copies
                .iter()
                .map(|c| c.folder.clone())
                .collect::<Vec<_>>(),
            vec![Some("User".into())]
        );
        assert_eq!(
            out.scripts,
            vec!["domain:d".to_string(), "user:u".to_string()]
        );
    }

    #[tokio::test]
    async fn include_loop_fails_and_vacation_answers_once() {
        let (_d, store, acc) = setup().await;
        let e = Engine::new(Limits::default(), "mx.test");
        put(
            &e,
            &store,
            SieveOwner::Account(acc),
            "loop",
            "require \"include\"; include :personal \"loop\";",
        )
        .await;
        let out = e
            .run(&store, acc, "example.test", MSG, &env(), Verdict::default())
            .await;
        assert!(out.error.is_some(), "{out:?}");
        put(
            &e,
            &store,
            SieveOwner::Account(acc),
            "away",
            "require \"vacation\"; vacation :days 3 :subject \"Away\" \"I am away\";",
        )
        .await;
        let out = e
            .run(&store, acc, "example.test", MSG, &env(), Verdict::default())
            .await;
        assert_eq!(out.error, None);
        assert_eq!(out.replies.len(), 1, "{out:?}");
        assert_eq!(out.replies[0].to, "alice@far.test");
        let text = String::from_utf8_lossy(&out.replies[0].raw).to_string();
        assert!(text.contains("Auto-Submitted: auto-replied"), "{text}");
        assert_eq!(out.copies.len(), 1, "implicit keep");
        let again = e
            .run(&store, acc, "example.test", MSG, &env(), Verdict::default())
            .await;
        assert!(again.replies.is_empty(), "once per sender");
        let list =
            b"From: list@far.test\r\nList-Id: <l.far.test>\r\nTo: me@example.test\r\n\r\nx\r\n";
        let env2 = Envelope {
            from: "list@far.test",
            ..env()
        };
        let out = e
            .run(&store, acc, "example.test", list, &env2, Verdict::default())
            .await;
        assert!(out.replies.is_empty(), "never to lists");
    }
}
