//! THREAD and UID THREAD (RFC 5256 §3) with the ORDEREDSUBJECT and REFERENCES algorithms
//! (RFC 5256 §4). The messages are those the SEARCH evaluation matches; Message-ID, References,
//! In-Reply-To, base subject and Date: come from the keys `sort` keeps per message.
//!
//! The thread tree lives in an arena; every walk over it is iterative, so a hostile chain of
//! references cannot exhaust the stack, and the loop check of step 1 is bounded by
//! [`MAX_THREAD_DEPTH`].

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use imap_codec::imap_types::core::Charset;
use imap_codec::imap_types::extensions::thread::ThreadingAlgorithm;
use imap_codec::imap_types::search::SearchKey;

use super::sort::{Keys, keys, sent_date};
use crate::backend::Backend;
use crate::session::{Session, Tagged, bad, ok, store_failure};

/// References of one message taken into account: the last ones, nearest to the message (its
/// parent is the last). A References field can list thousands of IDs, and each missing one
/// costs a dummy node; the older ancestors are still linked through their own References.
pub const MAX_THREAD_REFERENCES: usize = 32;

/// Longest chain of ancestors the loop check of RFC 5256 §4 step 1 walks. A link that would hang
/// a message below a deeper chain is not made (as if it closed a loop): the message stays a root
/// and is still grouped with its thread by subject (step 5).
pub const MAX_THREAD_DEPTH: usize = 10_000;

/// One message to thread.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    /// The number sent back: the sequence number, or the UID for UID THREAD.
    pub num: u32,
    /// RFC 5256 §2.2 sent date.
    pub date: i64,
    pub keys: Arc<Keys>,
}

/// RFC 5256 §4: msg-ids are compared after normalising away differences in quoting, so
/// `<"a b"@x>` and `<a b@x>` are one ID.
pub(crate) fn normalize_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .chars()
        .filter(|&c| c != '"' && c != '\\')
        .collect()
}

/// Whether a subject, as RFC 5256 §2.1 reads it, is a reply or a forward: a subj-refwd
/// ("re", "fw", "fwd" with an optional blob, then ":") after optional leading blobs, a "(fwd)"
/// trailer, or the "[fwd: ...]" wrapper.
pub(crate) fn is_reply_or_forward(subject: &str) -> bool {
    let s = subject.trim();
    if ends_with_ci(s, "(fwd)") || (starts_with_ci(s, "[fwd:") && s.ends_with(']')) {
        return true;
    }
    let mut t = s;
    while let Some(rest) = strip_blob(t) {
        t = rest;
    }
    let after = if starts_with_ci(t, "fwd") {
        &t[3..]
    } else if starts_with_ci(t, "fw") || starts_with_ci(t, "re") {
        &t[2..]
    } else {
        return false;
    };
    let after = after.trim_start();
    let after = strip_blob(after).unwrap_or(after);
    after.starts_with(':')
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
}

fn ends_with_ci(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.get(s.len() - suffix.len()..)
            .is_some_and(|t| t.eq_ignore_ascii_case(suffix))
}

/// subj-blob = "[" *BLOBCHAR "]" *WSP; the rest after it.
fn strip_blob(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('[')?;
    let close = rest.find([']', '['])?;
    if rest[close..].starts_with('[') {
        return None;
    }
    Some(rest[close + 1..].trim_start())
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// Index into the messages; `None` for a dummy.
    msg: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

/// Threads: an arena of nodes and the top-level nodes in order.
#[derive(Debug, Default)]
pub(crate) struct Forest {
    nodes: Vec<Node>,
    roots: Vec<usize>,
}

impl Forest {
    fn add(&mut self, msg: Option<usize>) -> usize {
        self.nodes.push(Node {
            msg,
            ..Node::default()
        });
        self.nodes.len() - 1
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }

    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.nodes[child].parent.take() {
            self.nodes[p].children.retain(|&c| c != child);
        }
    }

    /// Whether making `parent` the parent of `child` would close a loop: `parent` is `child` or
    /// one of its descendants (or sits below a chain longer than [`MAX_THREAD_DEPTH`]).
    fn would_loop(&self, parent: usize, child: usize) -> bool {
        if parent == child {
            return true;
        }
        if self.nodes[child].children.is_empty() {
            return false;
        }
        let mut at = parent;
        for _ in 0..MAX_THREAD_DEPTH {
            match self.nodes[at].parent {
                None => return false,
                Some(p) if p == child => return true,
                Some(p) => at = p,
            }
        }
        true
    }

    /// Sort key of a node for RFC 5256 §2.2 date order: its message's date, or for a dummy that
    /// of its first child; ties in mailbox order.
    fn date_key(&self, msgs: &[Msg], n: usize) -> (i64, usize) {
        let mut at = n;
        // Only top-level dummies remain (they always have a message child), but stay total.
        for _ in 0..2 {
            if let Some(i) = self.nodes[at].msg {
                return (msgs[i].date, i);
            }
            match self.nodes[at].children.first() {
                Some(&c) => at = c,
                None => break,
            }
        }
        (i64::MAX, usize::MAX)
    }

    fn sort_by_date(&self, msgs: &[Msg], list: &mut [usize]) {
        list.sort_by_cached_key(|&n| self.date_key(msgs, n));
    }

    /// The message a top-level node stands for in step 5: itself, or a dummy's first child.
    fn head_msg(&self, n: usize) -> Option<usize> {
        self.nodes[n].msg.or_else(|| {
            self.nodes[n]
                .children
                .first()
                .and_then(|&c| self.nodes[c].msg)
        })
    }

    /// Nodes reachable from the roots, each after all of its descendants.
    fn post_order(&self, roots: &[usize]) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.nodes.len());
        let mut stack: Vec<(usize, bool)> = roots.iter().rev().map(|&r| (r, false)).collect();
        while let Some((n, expanded)) = stack.pop() {
            if expanded {
                out.push(n);
            } else {
                stack.push((n, true));
                stack.extend(self.nodes[n].children.iter().rev().map(|&c| (c, false)));
            }
        }
        out
    }

    /// `* THREAD` data (RFC 5256 §5): a node with one child continues the same list, a node
    /// with several children opens one parenthesised list per child.
    pub(crate) fn encode(&self, msgs: &[Msg], out: &mut Vec<u8>) {
        enum Step {
            Node(usize),
            Open,
            Close,
        }
        out.extend_from_slice(b"* THREAD");
        if !self.roots.is_empty() {
            out.push(b' ');
        }
        let mut stack: Vec<Step> = Vec::new();
        for &root in &self.roots {
            stack.push(Step::Close);
            stack.push(Step::Node(root));
            stack.push(Step::Open);
            while let Some(step) = stack.pop() {
                match step {
                    Step::Open => {
                        if out.last().is_some_and(u8::is_ascii_digit) {
                            out.push(b' ');
                        }
                        out.push(b'(');
                    }
                    Step::Close => out.push(b')'),
                    Step::Node(n) => {
                        let node = &self.nodes[n];
                        if let Some(i) = node.msg {
                            if out.last().is_some_and(u8::is_ascii_digit) {
                                out.push(b' ');
                            }
                            let _ = write!(out, "{}", msgs[i].num);
                        }
                        match node.children.as_slice() {
                            [] => {}
                            [only] if node.msg.is_some() => stack.push(Step::Node(*only)),
                            many => {
                                for &c in many.iter().rev() {
                                    stack.push(Step::Close);
                                    stack.push(Step::Node(c));
                                    stack.push(Step::Open);
                                }
                            }
                        }
                    }
                }
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// ORDEREDSUBJECT (RFC 5256 §4): messages sorted by base subject then sent date; each run of
/// one subject is a thread whose first message is the parent of all the others; threads in
/// the sent date order of their first message.
pub(crate) fn ordered_subject(msgs: &[Msg]) -> Forest {
    let mut order: Vec<usize> = (0..msgs.len()).collect();
    order.sort_by(|&a, &b| {
        (&msgs[a].keys.subject, msgs[a].date, a).cmp(&(&msgs[b].keys.subject, msgs[b].date, b))
    });
    let mut f = Forest::default();
    let mut current: Option<(usize, usize)> = None; // (message, node) of the thread's first
    for i in order {
        match current {
            Some((first, node)) if msgs[first].keys.subject == msgs[i].keys.subject => {
                let child = f.add(Some(i));
                f.link(node, child);
            }
            _ => {
                let node = f.add(Some(i));
                f.roots.push(node);
                current = Some((i, node));
            }
        }
    }
    let mut roots = std::mem::take(&mut f.roots);
    f.sort_by_date(msgs, &mut roots);
    f.roots = roots;
    f
}

/// REFERENCES (RFC 5256 §4), steps 1 to 6. `msgs` is in mailbox order.
pub(crate) fn references(msgs: &[Msg]) -> Forest {
    let mut f = Forest::default();
    // Step 1.A, first part: a node per message under its Message-ID. A message without one, or
    // whose ID an earlier (lower sequence number) message already has, gets a unique ID: a node
    // that no reference can reach.
    let mut ids: HashMap<&str, usize> = HashMap::with_capacity(msgs.len());
    let own: Vec<usize> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let node = f.add(Some(i));
            if let Some(id) = m.keys.message_id.as_deref() {
                ids.entry(id).or_insert(node);
            }
            node
        })
        .collect();
    for (i, m) in msgs.iter().enumerate() {
        // (Keys::of kept the last MAX_THREAD_REFERENCES, normalised.)
        let refs: Vec<usize> = m
            .keys
            .refs
            .iter()
            .map(|r| *ids.entry(r).or_insert_with(|| f.add(None)))
            .collect();
        // Step 1.A: each reference is the parent of the next, unless the child already has a
        // parent or the link would close a loop.
        for w in refs.windows(2) {
            let (parent, child) = (w[0], w[1]);
            if f.nodes[child].parent.is_none() && !f.would_loop(parent, child) {
                f.link(parent, child);
            }
        }
        // Step 1.B: the message's own last reference is its parent; an existing parent (from a
        // truncated References field elsewhere) is dropped, and without references the message
        // has none.
        let cur = own[i];
        f.unlink(cur);
        if let Some(&last) = refs.last()
            && !f.would_loop(last, cur)
        {
            f.link(last, cur);
        }
    }
    // Step 2: the root set, in node order.
    let roots: Vec<usize> = (0..f.nodes.len())
        .filter(|&n| f.nodes[n].parent.is_none())
        .collect();
    // Step 3: prune dummies, bottom-up. A dummy without children goes; one with children is
    // replaced by them, except at the top level when it has more than one.
    #[derive(Clone, Copy, PartialEq)]
    enum Fate {
        Keep,
        Delete,
        Splice,
    }
    let mut fate = vec![Fate::Keep; f.nodes.len()];
    for n in f.post_order(&roots) {
        let old = std::mem::take(&mut f.nodes[n].children);
        let mut kept = Vec::with_capacity(old.len());
        for c in old {
            match fate[c] {
                Fate::Keep => kept.push(c),
                Fate::Delete => {}
                Fate::Splice => kept.append(&mut f.nodes[c].children),
            }
        }
        for &c in &kept {
            f.nodes[c].parent = Some(n);
        }
        if f.nodes[n].msg.is_none() {
            let top = f.nodes[n].parent.is_none();
            fate[n] = match kept.len() {
                0 => Fate::Delete,
                1 => Fate::Splice,
                _ if !top => Fate::Splice,
                _ => Fate::Keep,
            };
        }
        f.nodes[n].children = kept;
    }
    let mut top = Vec::with_capacity(roots.len());
    for r in roots {
        match fate[r] {
            Fate::Keep => top.push(r),
            Fate::Delete => {}
            Fate::Splice => top.append(&mut f.nodes[r].children),
        }
    }
    for &r in &top {
        f.nodes[r].parent = None;
    }
    // Step 4: sort the top level by sent date; a dummy by its first child once its children
    // are sorted.
    for &r in &top {
        if f.nodes[r].msg.is_none() {
            let mut children = std::mem::take(&mut f.nodes[r].children);
            f.sort_by_date(msgs, &mut children);
            f.nodes[r].children = children;
        }
    }
    f.sort_by_date(msgs, &mut top);
    // Step 5: gather top-level threads with the same base subject.
    // 5.B: one entry per subject; a non-dummy gives way to a dummy, and a reply or forward to a
    // message that is neither.
    let subject_of = |f: &Forest, n: usize| f.head_msg(n).map(|i| &*msgs[i].keys.subject);
    let is_dummy = |f: &Forest, n: usize| f.nodes[n].msg.is_none();
    let is_reply = |f: &Forest, n: usize| f.nodes[n].msg.is_some_and(|i| msgs[i].keys.reply);
    let mut table: HashMap<&str, usize> = HashMap::new();
    for &n in &top {
        let Some(s) = subject_of(&f, n).filter(|s| !s.is_empty()) else {
            continue;
        };
        match table.get(s) {
            None => {
                table.insert(s, n);
            }
            Some(&t) => {
                if !is_dummy(&f, t) && (is_dummy(&f, n) || (is_reply(&f, t) && !is_reply(&f, n))) {
                    table.insert(s, n);
                }
            }
        }
    }
    // 5.C: merge every other top-level thread of that subject into the table's.
    let mut slots: Vec<Option<usize>> = top.iter().map(|&n| Some(n)).collect();
    let mut slot_of: HashMap<usize, usize> = top.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    for i in 0..slots.len() {
        let Some(n) = slots[i] else { continue };
        let Some(s) = subject_of(&f, n).filter(|s| !s.is_empty()) else {
            continue;
        };
        let Some(&t) = table.get(s) else { continue };
        if t == n {
            continue;
        }
        slots[i] = None;
        if is_dummy(&f, t) && is_dummy(&f, n) {
            let mut children = std::mem::take(&mut f.nodes[n].children);
            for &c in &children {
                f.nodes[c].parent = Some(t);
            }
            f.nodes[t].children.append(&mut children);
        } else if is_dummy(&f, t) || (is_reply(&f, n) && !is_reply(&f, t)) {
            f.link(t, n);
        } else {
            let d = f.add(None);
            if let Some(at) = slot_of.remove(&t) {
                slots[at] = Some(d);
                slot_of.insert(d, at);
            }
            f.link(d, t);
            f.link(d, n);
            table.insert(s, d);
        }
    }
    // Step 6: sort every set of siblings by sent date, children before their parents' level
    // (only top-level dummies take their key from a child).
    for n in 0..f.nodes.len() {
        if f.nodes[n].children.len() > 1 {
            let mut children = std::mem::take(&mut f.nodes[n].children);
            f.sort_by_date(msgs, &mut children);
            f.nodes[n].children = children;
        }
    }
    let mut roots: Vec<usize> = slots.into_iter().flatten().collect();
    f.sort_by_date(msgs, &mut roots);
    f.roots = roots;
    f
}

impl<B: Backend> Session<B> {
    pub(crate) async fn thread(
        &mut self,
        algorithm: &ThreadingAlgorithm<'_>,
        charset: &Charset<'_>,
        search: &[SearchKey<'static>],
        uid: bool,
    ) -> Tagged {
        let by_references = match algorithm {
            ThreadingAlgorithm::References => true,
            ThreadingAlgorithm::OrderedSubject => false,
            ThreadingAlgorithm::Other(_) => return bad("Unsupported threading algorithm"),
        };
        let (matched, _) = match self.search_matches(Some(charset), search).await {
            Ok(m) => m,
            Err(t) => return t,
        };
        let keys = match keys(self.backend.store(), &matched).await {
            Ok(k) => k,
            Err(e) => return store_failure(&e),
        };
        let msgs: Vec<Msg> = matched
            .iter()
            .zip(keys)
            .map(|(m, keys)| Msg {
                num: if uid { m.rec.uid } else { m.msn },
                date: sent_date(m, &keys),
                keys,
            })
            .collect();
        drop(matched);
        let forest = if by_references {
            references(&msgs)
        } else {
            ordered_subject(&msgs)
        };
        let mut o = Vec::new();
        forest.encode(&msgs, &mut o);
        self.out.extend_from_slice(&o);
        ok(if uid {
            "UID THREAD completed"
        } else {
            "THREAD completed"
        })
    }
}
