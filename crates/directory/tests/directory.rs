//! The directory against the SQLite backend on a temporary folder.

use std::sync::Arc;

use directory::{
    AuthError, Directory, DirectoryConfig, DirectoryError, HashParams, MAX_ALIAS_DEPTH,
};
use store::sqlite::{Sqlite, SqliteOptions};
use store::{SpecialUse, Store};
use tempfile::TempDir;

/// Cheap Argon2 parameters: these tests are about behaviour, not cost.
const FAST: HashParams = HashParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};
const PW: &str = "correct horse battery";

fn open(default_domain: Option<&str>) -> (TempDir, Directory) {
    let dir = TempDir::new().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(Sqlite::open(dir.path(), SqliteOptions::default()).unwrap());
    let config = DirectoryConfig {
        hash_params: FAST,
        default_domain: default_domain.map(str::to_string),
        ..DirectoryConfig::default()
    };
    (dir, Directory::new(store, config).unwrap())
}

async fn with_domain() -> (TempDir, Directory) {
    let (t, d) = open(None);
    d.add_domain("Example.COM").await.unwrap();
    (t, d)
}

fn addresses(r: &directory::Resolution) -> Vec<String> {
    r.local.iter().map(|a| a.address()).collect()
}

#[tokio::test]
async fn domain_lifecycle() {
    let (_t, d) = with_domain().await;
    d.add_domain("other.org").await.unwrap();
    assert!(matches!(
        d.add_domain("EXAMPLE.com").await,
        Err(DirectoryError::AlreadyExists(_))
    ));
    assert!(matches!(
        d.add_domain("bad domain").await,
        Err(DirectoryError::InvalidAddress(_))
    ));
    let names: Vec<_> = d
        .list_domains()
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.name)
        .collect();
    assert_eq!(names, ["example.com", "other.org"]);

    d.add_account("bob@example.com", Some(PW), "Bob", None)
        .await
        .unwrap();
    d.add_alias("info@example.com", vec!["bob@example.com".into()])
        .await
        .unwrap();
    match d.remove_domain("example.com", false).await {
        Err(DirectoryError::DomainNotEmpty { accounts: 1, .. }) => {}
        other => panic!("{other:?}"),
    }
    d.remove_domain("Example.com", true).await.unwrap();
    assert!(d.list_accounts(None).await.unwrap().is_empty());
    assert!(d.list_aliases(None).await.unwrap().is_empty());
    assert!(matches!(
        d.remove_domain("example.com", true).await,
        Err(DirectoryError::NotFound(_))
    ));
    d.remove_domain("other.org", false).await.unwrap();
    assert!(d.list_domains().await.unwrap().is_empty());
}

#[tokio::test]
async fn account_lifecycle() {
    let (_t, d) = with_domain().await;
    let (bob, generated) = d
        .add_account("Bob@Example.COM", Some(PW), "Bob B", Some(1 << 20))
        .await
        .unwrap();
    assert!(generated.is_none());
    assert_eq!(bob.address(), "bob@example.com");
    assert_eq!(bob.quota_bytes, Some(1 << 20));
    assert!(bob.enabled);
    assert!(bob.password_hash.starts_with("$argon2id$"));
    assert!(
        !format!("{bob:?}").contains("argon2"),
        "hash must be redacted"
    );

    let mailboxes = d.store().mailbox_list(bob.id).await.unwrap();
    let mut got: Vec<_> = mailboxes
        .iter()
        .map(|m| (m.name.as_str(), m.special_use))
        .collect();
    got.sort_by_key(|(n, _)| n.to_string());
    assert_eq!(
        got,
        [
            ("Archive", Some(SpecialUse::Archive)),
            ("Drafts", Some(SpecialUse::Drafts)),
            ("INBOX", None),
            ("Junk", Some(SpecialUse::Junk)),
            ("Sent", Some(SpecialUse::Sent)),
            ("Trash", Some(SpecialUse::Trash)),
        ]
    );

    assert!(matches!(
        d.add_account("bob@example.com", Some(PW), "", None).await,
        Err(DirectoryError::AlreadyExists(_))
    ));
    assert!(matches!(
        d.add_account("carol@nowhere.org", Some(PW), "", None).await,
        Err(DirectoryError::NotFound(_))
    ));
    assert!(matches!(
        d.add_account("carol@example.com", Some("short"), "", None)
            .await,
        Err(DirectoryError::PasswordTooShort)
    ));
    assert!(matches!(
        d.add_account("\"carol x\"@example.com", Some(PW), "", None)
            .await,
        Err(DirectoryError::InvalidAddress(_))
    ));

    let (carol, generated) = d
        .add_account("carol@example.com", None, "Carol", None)
        .await
        .unwrap();
    let generated = generated.unwrap();
    assert_eq!(generated.len(), 20);
    assert_eq!(
        d.authenticate("carol@example.com", &generated)
            .await
            .unwrap()
            .id,
        carol.id
    );

    let list: Vec<_> = d
        .list_accounts(Some("EXAMPLE.com"))
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.address())
        .collect();
    assert_eq!(list, ["bob@example.com", "carol@example.com"]);
    assert_eq!(d.get_account("BOB@example.com").await.unwrap().id, bob.id);

    d.set_password("bob@example.com", "a new password")
        .await
        .unwrap();
    assert!(d.authenticate("bob@example.com", PW).await.is_err());
    assert!(
        d.authenticate("bob@example.com", "a new password")
            .await
            .is_ok()
    );
    assert!(matches!(
        d.set_password("bob@example.com", "1234567").await,
        Err(DirectoryError::PasswordTooShort)
    ));

    d.remove_account("Carol@example.com").await.unwrap();
    assert!(matches!(
        d.get_account("carol@example.com").await,
        Err(DirectoryError::NotFound(_))
    ));
    assert!(matches!(
        d.remove_account("carol@example.com").await,
        Err(DirectoryError::NotFound(_))
    ));
}

#[tokio::test]
async fn quota_set_and_read() {
    let (_t, d) = with_domain().await;
    d.add_account("bob@example.com", Some(PW), "", None)
        .await
        .unwrap();
    assert_eq!(
        d.get_account("bob@example.com").await.unwrap().quota_bytes,
        None
    );
    d.set_quota("bob@example.com", Some(5_000_000), Some(100))
        .await
        .unwrap();
    let bob = d.get_account("bob@example.com").await.unwrap();
    assert_eq!(
        (bob.quota_bytes, bob.quota_messages),
        (Some(5_000_000), Some(100))
    );
    let usage = d.quota_usage("bob@example.com").await.unwrap();
    assert_eq!((usage.bytes, usage.messages), (0, 0));
    d.set_quota("bob@example.com", None, None).await.unwrap();
    assert_eq!(
        d.get_account("bob@example.com").await.unwrap().quota_bytes,
        None
    );
    assert!(matches!(
        d.quota_usage("nobody@example.com").await,
        Err(DirectoryError::NotFound(_))
    ));
}

#[tokio::test]
async fn resolve_is_case_insensitive_and_strips_plus_tags() {
    let (_t, d) = with_domain().await;
    let (bob, _) = d
        .add_account("bob@example.com", Some(PW), "", None)
        .await
        .unwrap();
    for a in [
        "bob@example.com",
        "Bob@Example.COM",
        "<BOB@example.com>",
        "bob+lists@example.com",
        "Bob+X+Y@EXAMPLE.com",
    ] {
        let r = d.resolve(a).await.unwrap();
        assert_eq!(r.local.len(), 1, "{a}");
        assert_eq!(r.local[0].id, bob.id, "{a}");
        assert!(r.external.is_empty());
    }
    assert!(d.resolve("alice@example.com").await.unwrap().is_empty());
    assert!(d.resolve("alice+bob@example.com").await.unwrap().is_empty());
    assert!(matches!(
        d.resolve("bob@elsewhere.org").await,
        Err(DirectoryError::NotLocal(_))
    ));
    assert!(matches!(
        d.resolve("not an address").await,
        Err(DirectoryError::InvalidAddress(_))
    ));
}

#[tokio::test]
async fn aliases_chains_loops_and_external_targets() {
    let (_t, d) = with_domain().await;
    d.add_account("bob@example.com", Some(PW), "", None)
        .await
        .unwrap();
    d.add_account("carol@example.com", Some(PW), "", None)
        .await
        .unwrap();
    assert!(matches!(
        d.add_alias("bob@example.com", vec!["carol@example.com".into()])
            .await,
        Err(DirectoryError::AlreadyExists(_))
    ));
    assert!(matches!(
        d.add_alias("x@example.com", vec!["not an address".into()])
            .await,
        Err(DirectoryError::InvalidAddress(_))
    ));
    assert!(matches!(
        d.add_alias("x@example.com", vec![]).await,
        Err(DirectoryError::Invalid(_))
    ));
    assert!(matches!(
        d.add_alias("x@nowhere.org", vec!["bob@example.com".into()])
            .await,
        Err(DirectoryError::NotFound(_))
    ));

    // Local targets are normalised; external ones keep their local part's case.
    let team = d
        .add_alias(
            "Team@example.com",
            vec![
                "BOB@example.com".into(),
                "Dave.Smith@Remote.ORG".into(),
                "bob@example.com".into(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(team.local_part, "team");
    assert_eq!(team.targets, ["bob@example.com", "Dave.Smith@remote.org"]);
    assert!(matches!(
        d.add_account("team@example.com", Some(PW), "", None).await,
        Err(DirectoryError::AlreadyExists(_))
    ));

    // Alias of alias, deduplicated.
    d.add_alias(
        "all@example.com",
        vec![
            "team@example.com".into(),
            "carol@example.com".into(),
            "bob@example.com".into(),
        ],
    )
    .await
    .unwrap();
    let r = d.resolve("all+news@example.com").await.unwrap();
    assert_eq!(addresses(&r), ["bob@example.com", "carol@example.com"]);
    assert_eq!(r.external, ["Dave.Smith@remote.org"]);

    // A local target must exist (an account or an alias, with or without its +tag).
    assert!(matches!(
        d.add_alias("ping@example.com", vec!["pong@example.com".into()])
            .await,
        Err(DirectoryError::UnknownTarget(t)) if t == "pong@example.com"
    ));
    assert!(
        d.add_alias("news@example.com", vec!["bob+news@example.com".into()])
            .await
            .is_ok()
    );

    // A loop (made by re-creating an alias) ends, keeping what the loop reaches.
    d.add_alias("pong@example.com", vec!["carol@example.com".into()])
        .await
        .unwrap();
    d.add_alias("ping@example.com", vec!["pong@example.com".into()])
        .await
        .unwrap();
    d.remove_alias("pong@example.com").await.unwrap();
    d.add_alias(
        "pong@example.com",
        vec!["ping@example.com".into(), "carol@example.com".into()],
    )
    .await
    .unwrap();
    let r = d.resolve("ping@example.com").await.unwrap();
    assert_eq!(addresses(&r), ["carol@example.com"]);
    d.add_alias("b@example.com", vec!["carol@example.com".into()])
        .await
        .unwrap();
    d.add_alias("a@example.com", vec!["b@example.com".into()])
        .await
        .unwrap();
    d.remove_alias("b@example.com").await.unwrap();
    d.add_alias("b@example.com", vec!["a@example.com".into()])
        .await
        .unwrap();
    assert!(d.resolve("a@example.com").await.unwrap().is_empty());

    // An alias to an external address only.
    d.add_alias("fwd@example.com", vec!["someone@gmail.com".into()])
        .await
        .unwrap();
    let r = d.resolve("fwd@example.com").await.unwrap();
    assert!(r.local.is_empty());
    assert_eq!(r.external, ["someone@gmail.com"]);

    let list: Vec<_> = d
        .list_aliases(Some("example.com"))
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.local_part)
        .collect();
    assert_eq!(
        list,
        ["a", "all", "b", "fwd", "news", "ping", "pong", "team"]
    );
    d.remove_alias("FWD@example.com").await.unwrap();
    assert!(d.resolve("fwd@example.com").await.unwrap().is_empty());
    assert!(matches!(
        d.remove_alias("fwd@example.com").await,
        Err(DirectoryError::NotFound(_))
    ));
}

#[tokio::test]
async fn alias_depth_limit() {
    let (_t, d) = with_domain().await;
    d.add_account("end@example.com", Some(PW), "", None)
        .await
        .unwrap();
    // a0 -> a1 -> ... -> a{n-1} -> end: n alias hops, made from the end (targets must exist).
    let chain = |n: usize| {
        let d = d.clone();
        async move {
            for i in (0..n).rev() {
                let next = if i + 1 == n {
                    "end@example.com".to_string()
                } else {
                    format!("c{n}-{}@example.com", i + 1)
                };
                d.add_alias(&format!("c{n}-{i}@example.com"), vec![next])
                    .await
                    .unwrap();
            }
        }
    };
    chain(MAX_ALIAS_DEPTH).await;
    let r = d
        .resolve(&format!("c{MAX_ALIAS_DEPTH}-0@example.com"))
        .await
        .unwrap();
    assert_eq!(addresses(&r), ["end@example.com"]);
    let n = MAX_ALIAS_DEPTH + 1;
    chain(n).await;
    assert!(matches!(
        d.resolve(&format!("c{n}-0@example.com")).await,
        Err(DirectoryError::AliasTooDeep(_))
    ));
}

#[tokio::test]
async fn catchall() {
    let (_t, d) = with_domain().await;
    d.add_account("bob@example.com", Some(PW), "", None)
        .await
        .unwrap();
    d.add_account("postmaster@example.com", Some(PW), "", None)
        .await
        .unwrap();
    d.add_alias("sales@example.com", vec!["bob@example.com".into()])
        .await
        .unwrap();
    d.set_catchall("example.com", Some("PostMaster@example.com"))
        .await
        .unwrap();
    let dom = d.list_domains().await.unwrap().remove(0);
    assert_eq!(dom.catchall.as_deref(), Some("postmaster@example.com"));

    assert_eq!(
        addresses(&d.resolve("whoever@example.com").await.unwrap()),
        ["postmaster@example.com"]
    );
    // Accounts, plus-tags and aliases come before the catch-all.
    assert_eq!(
        addresses(&d.resolve("bob+x@example.com").await.unwrap()),
        ["bob@example.com"]
    );
    assert_eq!(
        addresses(&d.resolve("sales@example.com").await.unwrap()),
        ["bob@example.com"]
    );

    // A catch-all to an unknown address of our domains is refused.
    assert!(matches!(
        d.set_catchall("example.com", Some("nobody@example.com"))
            .await,
        Err(DirectoryError::UnknownTarget(_))
    ));
    // One whose target went away later does not loop.
    d.add_account("gone@example.com", Some(PW), "", None)
        .await
        .unwrap();
    d.set_catchall("example.com", Some("gone@example.com"))
        .await
        .unwrap();
    d.remove_account("gone@example.com").await.unwrap();
    assert!(d.resolve("whoever@example.com").await.unwrap().is_empty());

    // A catch-all to a remote address.
    d.set_catchall("example.com", Some("Ops@Remote.org"))
        .await
        .unwrap();
    assert_eq!(
        d.resolve("whoever@example.com").await.unwrap().external,
        ["Ops@remote.org"]
    );

    d.set_catchall("example.com", None).await.unwrap();
    assert!(d.resolve("whoever@example.com").await.unwrap().is_empty());
    assert!(matches!(
        d.set_catchall("nowhere.org", None).await,
        Err(DirectoryError::NotFound(_))
    ));
}

#[tokio::test]
async fn disabled_accounts_resolve_flagged() {
    let (_t, d) = with_domain().await;
    d.add_account("bob@example.com", Some(PW), "", None)
        .await
        .unwrap();
    d.set_enabled("bob@example.com", false).await.unwrap();
    let r = d.resolve("bob@example.com").await.unwrap();
    assert_eq!(r.local.len(), 1);
    assert!(!r.local[0].enabled);
    d.set_enabled("bob@example.com", true).await.unwrap();
    assert!(d.resolve("bob@example.com").await.unwrap().local[0].enabled);
}

#[tokio::test]
async fn authenticate_failures_are_indistinguishable() {
    let (_t, d) = with_domain().await;
    let (bob, _) = d
        .add_account("bob@example.com", Some(PW), "", None)
        .await
        .unwrap();
    d.add_account("carol@example.com", Some(PW), "", None)
        .await
        .unwrap();
    d.set_enabled("carol@example.com", false).await.unwrap();
    d.add_alias("info@example.com", vec!["bob@example.com".into()])
        .await
        .unwrap();

    assert_eq!(
        d.authenticate("bob@example.com", PW).await.unwrap().id,
        bob.id
    );
    assert_eq!(
        d.authenticate("Bob@EXAMPLE.com", PW).await.unwrap().id,
        bob.id
    );

    let failures = [
        ("bob@example.com", "wrong password"),
        ("bob@example.com", ""),
        ("nobody@example.com", PW),
        ("bob@nowhere.org", PW),
        ("carol@example.com", PW),
        ("info@example.com", PW),
        ("bob+tag@example.com", PW),
        ("bob", PW),
        ("", PW),
        ("\"bob\"@example.com", PW),
    ];
    for (user, pw) in failures {
        let e = d.authenticate(user, pw).await.unwrap_err();
        assert!(matches!(e, AuthError::Invalid), "{user}: {e:?}");
        assert_eq!(e.to_string(), "invalid credentials");
    }
    let long = "x".repeat(directory::password::MAX_PASSWORD_LEN + 1);
    assert!(matches!(
        d.authenticate("bob@example.com", &long).await,
        Err(AuthError::Invalid)
    ));
}

#[tokio::test]
async fn authenticate_with_default_domain() {
    let (_t, d) = open(Some("Example.com"));
    d.add_domain("example.com").await.unwrap();
    d.add_domain("other.org").await.unwrap();
    let (bob, _) = d
        .add_account("bob@example.com", Some(PW), "", None)
        .await
        .unwrap();
    d.add_account("ann@other.org", Some(PW), "", None)
        .await
        .unwrap();
    assert_eq!(d.authenticate("bob", PW).await.unwrap().id, bob.id);
    assert_eq!(d.authenticate("BOB", PW).await.unwrap().id, bob.id);
    assert!(matches!(
        d.authenticate("bob", "wrong password").await,
        Err(AuthError::Invalid)
    ));
    assert!(matches!(
        d.authenticate("ann", PW).await,
        Err(AuthError::Invalid)
    ));
    assert!(d.authenticate("ann@other.org", PW).await.is_ok());
}

#[tokio::test]
async fn authenticate_with_default_params() {
    let dir = TempDir::new().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(Sqlite::open(dir.path(), SqliteOptions::default()).unwrap());
    let d = Directory::new(store, DirectoryConfig::default()).unwrap();
    d.add_domain("example.com").await.unwrap();
    let (bob, _) = d
        .add_account("bob@example.com", Some(PW), "", None)
        .await
        .unwrap();
    assert!(
        bob.password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );
    assert!(d.authenticate("bob@example.com", PW).await.is_ok());
    assert!(matches!(
        d.authenticate("nobody@example.com", PW).await,
        Err(AuthError::Invalid)
    ));
}

#[test]
fn invalid_config_refused() {
    let dir = TempDir::new().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(Sqlite::open(dir.path(), SqliteOptions::default()).unwrap());
    let bad_params = DirectoryConfig {
        hash_params: HashParams {
            memory_kib: 1,
            iterations: 1,
            parallelism: 1,
        },
        ..DirectoryConfig::default()
    };
    assert!(matches!(
        Directory::new(store.clone(), bad_params),
        Err(DirectoryError::Invalid(_))
    ));
    let bad_domain = DirectoryConfig {
        hash_params: FAST,
        default_domain: Some("not a domain".into()),
        ..DirectoryConfig::default()
    };
    assert!(matches!(
        Directory::new(store.clone(), bad_domain),
        Err(DirectoryError::Invalid(_))
    ));
    let bad_score = DirectoryConfig {
        hash_params: FAST,
        min_password_score: 5,
        ..DirectoryConfig::default()
    };
    assert!(matches!(
        Directory::new(store, bad_score),
        Err(DirectoryError::Invalid(_))
    ));
}

/// Every way of setting a password applies one policy: length, then zxcvbn's estimate knowing the
/// account's address and name; generated passwords pass it.
#[tokio::test]
async fn weak_passwords_are_refused_everywhere() {
    let (_t, d) = with_domain().await;
    for weak in ["password", "Password1", "alice@example.com", "alice.martin"] {
        match d
            .add_account("alice.martin@example.com", Some(weak), "Alice Martin", None)
            .await
        {
            Err(DirectoryError::WeakPassword(w)) => {
                assert!(!w.feedback.is_empty(), "{weak}: no reason given");
                assert!(w.to_string().contains("too easy to guess"), "{w}");
            }
            other => panic!("{weak} accepted or wrong error: {other:?}"),
        }
    }
    let (_, generated) = d
        .add_account("alice.martin@example.com", None, "Alice Martin", None)
        .await
        .unwrap();
    assert!(generated.is_some());
    assert!(matches!(
        d.set_password("alice.martin@example.com", "Password1")
            .await,
        Err(DirectoryError::WeakPassword(_))
    ));
    d.set_password("alice.martin@example.com", "velvet-otter-quarry-93")
        .await
        .unwrap();
    let strong = d
        .generate_password_for_account("alice.martin@example.com")
        .await
        .unwrap();
    d.set_password("alice.martin@example.com", &strong)
        .await
        .unwrap();

    // With the check off (score 0), only the length counts.
    let dir = TempDir::new().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(Sqlite::open(dir.path(), SqliteOptions::default()).unwrap());
    let lax = Directory::new(
        store,
        DirectoryConfig {
            hash_params: FAST,
            min_password_score: 0,
            ..DirectoryConfig::default()
        },
    )
    .unwrap();
    lax.add_domain("example.com").await.unwrap();
    lax.add_account("bob@example.com", Some("password"), "", None)
        .await
        .unwrap();
}

#[tokio::test]
async fn listing_an_unknown_domain_is_an_error() {
    let (_t, d) = with_domain().await;
    assert!(
        d.list_accounts(Some("example.com"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        d.list_accounts(Some("nosuch.test")).await,
        Err(DirectoryError::NotFound(_))
    ));
    assert!(matches!(
        d.list_aliases(Some("nosuch.test")).await,
        Err(DirectoryError::NotFound(_))
    ));
}
