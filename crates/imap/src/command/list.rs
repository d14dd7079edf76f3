//! LIST (RFC 9051 §6.3.9) with LIST-EXTENDED (RFC 5258: selection options SUBSCRIBED, REMOTE,
//! RECURSIVEMATCH; return options CHILDREN, SUBSCRIBED; several patterns), SPECIAL-USE
//! (RFC 6154 §5), LIST-STATUS (RFC 5819), and LSUB (RFC 3501 §6.3.9).

use std::collections::{BTreeMap, BTreeSet};

use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use store::{INBOX, MAILBOX_DELIMITER, MailboxRecord, SpecialUse};

use super::ext::{ListArgs, ListReturn, ListSelect};
use super::{decode_name, normalize_inbox};
use crate::backend::Backend;
use crate::session::{Session, Tagged, ok, store_failure};

/// `*` matches anything, `%` anything but the hierarchy delimiter (RFC 9051 §6.3.9).
/// Dynamic programming: linear in name × pattern, whatever the pattern.
pub fn wildcard_match(pattern: &[char], name: &[char]) -> bool {
    let n = name.len();
    // m[j] = pattern[..i] matches name[..j]
    let mut m = vec![false; n + 1];
    m[0] = true;
    for pc in pattern {
        let mut next = vec![false; n + 1];
        match *pc {
            '*' => {
                let mut any = false;
                for j in 0..=n {
                    any |= m[j];
                    next[j] = any;
                }
            }
            '%' => {
                let mut any = false;
                for j in 0..=n {
                    if j > 0 && name[j - 1] == MAILBOX_DELIMITER {
                        any = false;
                    }
                    any |= m[j];
                    next[j] = any;
                }
            }
            c => {
                for j in 1..=n {
                    next[j] = m[j - 1] && name[j - 1] == c;
                }
            }
        }
        m = next;
    }
    m[n]
}

/// The patterns of a LIST command joined to its reference.
struct Patterns(Vec<Vec<char>>);

impl Patterns {
    fn matches(&self, name: &str) -> bool {
        let chars: Vec<char> = name.chars().collect();
        self.0.iter().any(|p| wildcard_match(p, &chars))
    }

    /// Whether a pattern ending with `%` matches `name`: RFC 9051 §6.3.9 (RFC 3501 §6.3.8),
    /// "if the "%" wildcard is the last character of a mailbox name argument, matching levels
    /// of hierarchy are also returned".
    fn matches_level(&self, name: &str) -> bool {
        let chars: Vec<char> = name.chars().collect();
        self.0
            .iter()
            .any(|p| p.last() == Some(&'%') && wildcard_match(p, &chars))
    }
}

/// Every proper parent level of a name (`a`, `a/b` for `a/b/c`).
fn parents(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices(MAILBOX_DELIMITER)
        .map(|(i, _)| &name[..i])
}

/// One line of a LIST answer being built.
#[derive(Default)]
struct Entry {
    attrs: Vec<&'static str>,
    /// RFC 5258 §3.5 CHILDINFO ("SUBSCRIBED").
    childinfo: bool,
    mailbox: Option<MailboxRecord>,
}

fn mailbox_bytes(m: &Mailbox<'_>) -> Vec<u8> {
    match m {
        Mailbox::Inbox => INBOX.as_bytes().to_vec(),
        Mailbox::Other(o) => o.as_ref().to_vec(),
    }
}

impl<B: Backend> Session<B> {
    /// A LIST as imap-codec decodes it (no RFC 5258 syntax).
    pub(crate) async fn list_basic(
        &mut self,
        reference: &Mailbox<'_>,
        pattern: &ListMailbox<'_>,
    ) -> Tagged {
        let pattern = match pattern {
            ListMailbox::Token(t) => t.as_ref().to_vec(),
            ListMailbox::String(s) => s.as_ref().to_vec(),
        };
        let args = ListArgs {
            select: ListSelect::default(),
            reference: mailbox_bytes(reference),
            patterns: vec![pattern],
            ret: ListReturn::default(),
            extended: false,
        };
        self.list(&args).await
    }

    fn patterns(&self, reference: &[u8], patterns: &[Vec<u8>]) -> Patterns {
        // Wildcards are ASCII, so patterns decode like names; one that does not decode is
        // matched as written (and then matches nothing stored in another spelling).
        let utf8 = self.utf8();
        let decode = |raw: &[u8]| {
            decode_name(raw, utf8).unwrap_or_else(|| String::from_utf8_lossy(raw).into_owned())
        };
        let reference = decode(reference);
        Patterns(
            patterns
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let full = format!("{reference}{}", decode(p));
                    normalize_inbox(&full).chars().collect()
                })
                .collect(),
        )
    }

    pub(crate) async fn list(&mut self, args: &ListArgs) -> Tagged {
        if args.patterns.iter().all(|p| p.is_empty()) {
            // RFC 9051 §6.3.9: the hierarchy delimiter and root of the reference.
            self.out
                .extend_from_slice(b"* LIST (\\Noselect) \"/\" \"\"\r\n");
            return ok("LIST completed");
        }
        let pats = self.patterns(&args.reference, &args.patterns);
        let store = self.backend.store().clone();
        let account = self.account();
        let boxes = match store.mailbox_list(account).await {
            Ok(b) => b,
            Err(e) => return store_failure(&e),
        };
        let sel = &args.select;
        let ret = &args.ret;
        let want_subs = sel.subscribed || ret.subscribed;
        let subs: BTreeSet<String> = if want_subs {
            match store.subscriptions(account).await {
                Ok(s) => s.into_iter().collect(),
                Err(e) => return store_failure(&e),
            }
        } else {
            BTreeSet::new()
        };
        let by_name: BTreeMap<&str, &MailboxRecord> =
            boxes.iter().map(|b| (b.name.as_str(), b)).collect();
        let has_children = |n: &str| {
            let prefix = format!("{n}{MAILBOX_DELIMITER}");
            by_name
                .range(prefix.as_str()..)
                .next()
                .is_some_and(|(o, _)| o.starts_with(&prefix))
        };

        // A name with no mailbox behind it: a level that exists only as the parent of other
        // mailboxes, or a subscribed name. RFC 9051 §7.3.1 and §6.3.9.6 (RFC 5258 §3, §3.5, and
        // its Example 10): \NonExistent, which implies \NoSelect (§6.3.9.4), for clients that
        // used the LIST-EXTENDED syntax or enabled IMAP4rev2. The basic LIST of an IMAP4rev1
        // client keeps RFC 3501 §6.3.8's \Noselect, the only attribute it knows for such a level
        // (as Dovecot does).
        let modern = args.extended || self.enabled.rev2;
        let missing = if modern {
            "\\NonExistent"
        } else {
            "\\Noselect"
        };
        // Candidates: subscribed names (RFC 5258 §3.1 SUBSCRIBED), or existing mailboxes and the
        // levels that exist only as parents of other names.
        let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
        let add = |name: &str, entries: &mut BTreeMap<String, Entry>| {
            if entries.contains_key(name) || !pats.matches(name) {
                return;
            }
            let mailbox = by_name.get(name).map(|m| (*m).clone());
            let mut e = Entry {
                mailbox,
                ..Entry::default()
            };
            if e.mailbox.is_none() {
                e.attrs.push(missing);
            }
            if e.mailbox.is_some() || has_children(name) {
                e.attrs.push(if has_children(name) {
                    "\\HasChildren"
                } else {
                    "\\HasNoChildren"
                });
            }
            if let Some(u) = e.mailbox.as_ref().and_then(|m| m.special_use) {
                e.attrs.push(SpecialUse::as_str(u));
            }
            if want_subs && subs.contains(name) {
                e.attrs.push("\\Subscribed");
            }
            entries.insert(name.to_string(), e);
        };
        if sel.subscribed {
            for s in &subs {
                add(s, &mut entries);
            }
        } else {
            for b in &boxes {
                if sel.special_use && b.special_use.is_none() {
                    continue;
                }
                add(&b.name, &mut entries);
            }
            if !sel.special_use {
                for b in &boxes {
                    for p in parents(&b.name) {
                        // RFC 9051 §7.3.1 (\NonExistent) and §6.3.9.8 Examples 8 and 10: a
                        // missing level matched by `*`, or by a pattern without a trailing `%`,
                        // is not returned; its children say it is there. RFC 3501 had no such
                        // rule, and its clients still get it with \Noselect.
                        if !by_name.contains_key(p) && (!modern || pats.matches_level(p)) {
                            add(p, &mut entries);
                        }
                    }
                }
            }
        }
        // RFC 5258 §3.1 RECURSIVEMATCH: a matching name with a subscribed descendant that the
        // patterns do not match is listed too, with CHILDINFO ("SUBSCRIBED").
        if sel.recursive_match {
            for s in &subs {
                if pats.matches(s) {
                    continue;
                }
                for p in parents(s) {
                    if !pats.matches(p) {
                        continue;
                    }
                    // RFC 9051 §6.3.9.6 Table 3 and §6.3.9.8 Example 7 A2: a parent without a
                    // mailbox is listed for its child with \NonExistent all the same.
                    add(p, &mut entries);
                    if let Some(e) = entries.get_mut(p) {
                        e.childinfo = true;
                    }
                }
            }
        }

        for (name, e) in entries {
            self.out
                .extend_from_slice(format!("* LIST ({}) \"/\" ", e.attrs.join(" ")).as_bytes());
            let mut o = Vec::new();
            self.mailbox_string(&mut o, &name);
            self.out.extend_from_slice(&o);
            if e.childinfo {
                self.out
                    .extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            self.out.extend_from_slice(b"\r\n");
            // RFC 5819 §2: STATUS right after the LIST line, for selectable mailboxes only.
            if let (Some(items), Some(mb)) = (&ret.status, &e.mailbox) {
                match self.status_response(mb, items).await {
                    Ok(line) => self.out.extend_from_slice(&line),
                    Err(t) => return t,
                }
            }
        }
        ok("LIST completed")
    }

    /// LSUB (RFC 3501 §6.3.9; deprecated by RFC 9051 but still used by IMAP4rev1 clients).
    pub(crate) async fn lsub(
        &mut self,
        reference: &Mailbox<'_>,
        pattern: &ListMailbox<'_>,
    ) -> Tagged {
        let pattern = match pattern {
            ListMailbox::Token(t) => t.as_ref().to_vec(),
            ListMailbox::String(s) => s.as_ref().to_vec(),
        };
        if pattern.is_empty() {
            self.out
                .extend_from_slice(b"* LSUB (\\Noselect) \"/\" \"\"\r\n");
            return ok("LSUB completed");
        }
        let pats = self.patterns(&mailbox_bytes(reference), &[pattern]);
        let store = self.backend.store().clone();
        let account = self.account();
        let (boxes, subs) = match (
            store.mailbox_list(account).await,
            store.subscriptions(account).await,
        ) {
            (Ok(b), Ok(s)) => (b, s),
            (Err(e), _) | (_, Err(e)) => return store_failure(&e),
        };
        let names: BTreeSet<&str> = boxes.iter().map(|b| b.name.as_str()).collect();
        for s in subs.iter().filter(|s| pats.matches(s)) {
            let attrs = if names.contains(s.as_str()) {
                ""
            } else {
                "\\Noselect"
            };
            let mut o = format!("* LSUB ({attrs}) \"/\" ").into_bytes();
            self.mailbox_string(&mut o, s);
            o.extend_from_slice(b"\r\n");
            self.out.extend_from_slice(&o);
        }
        ok("LSUB completed")
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard_match;

    fn m(p: &str, n: &str) -> bool {
        wildcard_match(
            &p.chars().collect::<Vec<_>>(),
            &n.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn wildcards() {
        assert!(m("*", "a/b/c"));
        assert!(m("%", "INBOX"));
        assert!(!m("%", "a/b"));
        assert!(m("a/%", "a/b"));
        assert!(!m("a/%", "a/b/c"));
        assert!(m("a*c", "a/b/c"));
        assert!(m("INBOX", "INBOX"));
        assert!(!m("INBOX", "INBOX/x"));
        assert!(m("%/%", "a/b"));
    }
}
