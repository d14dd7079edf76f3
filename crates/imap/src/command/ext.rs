//! Command forms imap-codec 2.0.0-alpha.10 does not parse, read here from the complete message
//! (line and literals) before imap-codec sees it:
//! - LIST with selection options, several patterns or return options (RFC 5258, RFC 5819,
//!   RFC 6154 §5);
//! - CREATE with a USE parameter (RFC 6154 §3);
//! - SEARCH RETURN (...) (RFC 4731, RFC 5182): the options are taken out and the rest of the
//!   command goes to imap-codec;
//! - the saved search result `$` (RFC 5182) as a sequence set, replaced by [`SAVED_RESULT`]
//!   where the command takes a sequence set (and only there: `$` is also a valid atom, e.g. a
//!   keyword or a SUBJECT argument).
//!
//! Commands not in these forms are left to imap-codec untouched.

use imap_codec::imap_types::core::AString;
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::status::StatusDataItemName;

/// What `$` is replaced with: a sequence set imap-codec accepts, which the selected view reads as
/// the saved search result while the command runs (see `Selected::resolve`). A client may write
/// this number itself (UID 4294967295 is valid): in a command that also uses `$`, its own sets of
/// that value are written [`SAVED_RESULT`]`:`[`SAVED_RESULT`], the same set by RFC 9051 §9
/// (seq-range), so that only `$` reads as the marker.
pub const SAVED_RESULT: u32 = u32::MAX;

/// Deepest nesting of search keys (parentheses, NOT, OR) followed when looking for `$`;
/// imap-codec refuses anything deeper than 9 anyway.
const MAX_SEARCH_NESTING: usize = 16;

/// Most patterns, options or special-use attributes one command may list.
pub const MAX_LIST_ITEMS: usize = 64;

/// One token of a command's arguments; `start..end` is its place in the message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Atom,
    /// A quoted string or a literal; `value` holds its content.
    Str,
    Open,
    Close,
    End,
}

#[derive(Debug, Clone)]
struct Tok {
    kind: Kind,
    value: Vec<u8>,
    start: usize,
}

impl Tok {
    fn atom_is(&self, word: &str) -> bool {
        self.kind == Kind::Atom && self.value.eq_ignore_ascii_case(word.as_bytes())
    }
}

/// A tokenizer of IMAP arguments: atoms, quoted strings, literals (`{n}`, `{n+}`, `~{n}`) and
/// parentheses, separated by spaces.
struct Lexer<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Lexer<'a> {
    fn new(b: &'a [u8]) -> Lexer<'a> {
        Lexer { b, i: 0 }
    }

    fn next(&mut self) -> Option<Tok> {
        while self.b.get(self.i) == Some(&b' ') {
            self.i += 1;
        }
        let start = self.i;
        let tok = |kind, value| Some(Tok { kind, value, start });
        match self.b.get(self.i) {
            None | Some(b'\r' | b'\n') => tok(Kind::End, Vec::new()),
            Some(b'(') => {
                self.i += 1;
                tok(Kind::Open, Vec::new())
            }
            Some(b')') => {
                self.i += 1;
                tok(Kind::Close, Vec::new())
            }
            Some(b'"') => {
                let mut v = Vec::new();
                self.i += 1;
                loop {
                    match *self.b.get(self.i)? {
                        b'"' => break,
                        b'\\' => {
                            self.i += 1;
                            v.push(*self.b.get(self.i)?);
                        }
                        b'\r' | b'\n' => return None,
                        c => v.push(c),
                    }
                    self.i += 1;
                }
                self.i += 1;
                tok(Kind::Str, v)
            }
            Some(b'{' | b'~') => {
                if self.b[self.i] == b'~' {
                    self.i += 1;
                }
                if self.b.get(self.i) != Some(&b'{') {
                    return None;
                }
                let close = self.b[self.i..].iter().position(|&c| c == b'}')? + self.i;
                let digits = std::str::from_utf8(&self.b[self.i + 1..close]).ok()?;
                let len: usize = digits.trim_end_matches(['+', '-']).parse().ok()?;
                if self.b.get(close + 1..close + 3) != Some(b"\r\n") {
                    return None;
                }
                let data = close + 3;
                let end = data.checked_add(len)?;
                let v = self.b.get(data..end)?.to_vec();
                self.i = end;
                tok(Kind::Str, v)
            }
            Some(_) => {
                while let Some(&c) = self.b.get(self.i) {
                    if matches!(c, b' ' | b'(' | b')' | b'\r' | b'\n' | b'"') {
                        break;
                    }
                    self.i += 1;
                }
                tok(Kind::Atom, self.b[start..self.i].to_vec())
            }
        }
    }

    /// Tag and command name (the second word of `UID FETCH`), upper-cased.
    fn head(&mut self) -> Option<(String, String)> {
        let tag = self.next().filter(|t| t.kind == Kind::Atom)?;
        let mut name = self.next().filter(|t| t.kind == Kind::Atom)?;
        if name.atom_is("UID") {
            name = self.next().filter(|t| t.kind == Kind::Atom)?;
        }
        Some((
            String::from_utf8_lossy(&tag.value).into_owned(),
            String::from_utf8_lossy(&name.value).to_ascii_uppercase(),
        ))
    }

    /// Atoms of a parenthesised list (the `(` already read).
    fn atom_list(&mut self) -> Option<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        loop {
            let t = self.next()?;
            match t.kind {
                Kind::Close => return Some(out),
                Kind::Atom if out.len() < MAX_LIST_ITEMS => out.push(t.value),
                _ => return None,
            }
        }
    }
}

fn mailbox(value: Vec<u8>) -> Option<Mailbox<'static>> {
    AString::try_from(value).ok().map(Mailbox::from)
}

/// RFC 5258 §3.1 selection options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListSelect {
    pub subscribed: bool,
    pub recursive_match: bool,
    pub special_use: bool,
}

/// RFC 5258 §3.2 return options, RFC 5819 STATUS, RFC 6154 SPECIAL-USE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListReturn {
    pub children: bool,
    pub subscribed: bool,
    pub special_use: bool,
    pub status: Option<Vec<StatusDataItemName>>,
}

/// A LIST command, extended or not.
#[derive(Debug, Clone)]
pub struct ListArgs {
    pub select: ListSelect,
    pub reference: Vec<u8>,
    pub patterns: Vec<Vec<u8>>,
    pub ret: ListReturn,
    /// The command used RFC 5258 syntax (responses may carry extended data).
    pub extended: bool,
}

/// SEARCH RETURN options (RFC 4731 §3.1, RFC 5182 §2.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchReturn {
    pub min: bool,
    pub max: bool,
    pub count: bool,
    pub all: bool,
    pub save: bool,
}

/// The outcome of looking at a message before imap-codec.
pub enum Pre {
    /// Not one of our forms: decode the message as it is.
    Untouched,
    /// Decode these bytes instead (RETURN options taken out, `$` replaced).
    Rewritten {
        bytes: Vec<u8>,
        search_return: Option<SearchReturn>,
        saved_result: bool,
    },
    List {
        tag: String,
        args: ListArgs,
    },
    Create {
        tag: String,
        mailbox: Mailbox<'static>,
        uses: Vec<String>,
    },
    Bad {
        tag: String,
        why: &'static str,
    },
}

pub fn status_item(name: &[u8]) -> Option<StatusDataItemName> {
    Some(match name.to_ascii_uppercase().as_slice() {
        b"MESSAGES" => StatusDataItemName::Messages,
        b"RECENT" => StatusDataItemName::Recent,
        b"UIDNEXT" => StatusDataItemName::UidNext,
        b"UIDVALIDITY" => StatusDataItemName::UidValidity,
        b"UNSEEN" => StatusDataItemName::Unseen,
        b"DELETED" => StatusDataItemName::Deleted,
        b"DELETED-STORAGE" => StatusDataItemName::DeletedStorage,
        b"SIZE" => StatusDataItemName::Size,
        b"HIGHESTMODSEQ" => StatusDataItemName::HighestModSeq,
        _ => return None,
    })
}

/// Looks at a complete command message.
pub fn preparse(msg: &[u8]) -> Pre {
    let mut lx = Lexer::new(msg);
    let Some((tag, name)) = lx.head() else {
        return Pre::Untouched;
    };
    let bad = |why| Pre::Bad {
        tag: tag.clone(),
        why,
    };
    match name.as_str() {
        "LIST" => match list(&mut lx) {
            Some(Some(args)) => Pre::List { tag, args },
            Some(None) => Pre::Untouched,
            None => bad("Invalid LIST arguments"),
        },
        "CREATE" => match create(&mut lx) {
            Some(Some((mailbox, uses))) => Pre::Create { tag, mailbox, uses },
            Some(None) => Pre::Untouched,
            None => bad("Invalid CREATE arguments"),
        },
        // SORT and THREAD (RFC 5256) take search keys, so `$` too.
        "SEARCH" | "FETCH" | "STORE" | "COPY" | "MOVE" | "EXPUNGE" | "SORT" | "THREAD" => {
            let args_at = lx.i;
            let search_return = if name == "SEARCH" {
                match search_return(&mut lx) {
                    Ok(r) => r,
                    Err(why) => return bad(why),
                }
            } else {
                None
            };
            let mut bytes = match search_return {
                Some((_, start, end)) => {
                    let mut b = msg[..start].to_vec();
                    b.extend_from_slice(msg[end..].trim_ascii_start());
                    b
                }
                None => msg.to_vec(),
            };
            let saved_result = replace_saved_result(&mut bytes, args_at, &name);
            if search_return.is_none() && !saved_result {
                return Pre::Untouched;
            }
            Pre::Rewritten {
                bytes,
                search_return: search_return.map(|r| r.0),
                saved_result,
            }
        }
        _ => Pre::Untouched,
    }
}

/// `Some(None)`: a basic LIST for imap-codec; `None`: invalid.
fn list(lx: &mut Lexer<'_>) -> Option<Option<ListArgs>> {
    let mut extended = false;
    let mut select = ListSelect::default();
    let mut t = lx.next()?;
    if t.kind == Kind::Open {
        extended = true;
        for opt in lx.atom_list()? {
            match opt.to_ascii_uppercase().as_slice() {
                b"SUBSCRIBED" => select.subscribed = true,
                b"RECURSIVEMATCH" => select.recursive_match = true,
                b"SPECIAL-USE" => select.special_use = true,
                // RFC 5258 §3.1: no remote mailboxes here, so REMOTE changes nothing.
                b"REMOTE" => {}
                _ => return None,
            }
        }
        // RFC 5258 §3.1: RECURSIVEMATCH needs another option that it modifies.
        if select.recursive_match && !select.subscribed {
            return None;
        }
        t = lx.next()?;
    }
    if !matches!(t.kind, Kind::Atom | Kind::Str) {
        return None;
    }
    let reference = t.value;
    let mut patterns = Vec::new();
    let t = lx.next()?;
    match t.kind {
        Kind::Atom | Kind::Str => patterns.push(t.value),
        Kind::Open => {
            extended = true;
            loop {
                let p = lx.next()?;
                match p.kind {
                    Kind::Close if !patterns.is_empty() => break,
                    Kind::Atom | Kind::Str if patterns.len() < MAX_LIST_ITEMS => {
                        patterns.push(p.value)
                    }
                    _ => return None,
                }
            }
        }
        _ => return None,
    }
    let mut ret = ListReturn::default();
    let t = lx.next()?;
    if t.atom_is("RETURN") {
        extended = true;
        if lx.next()?.kind != Kind::Open {
            return None;
        }
        loop {
            let o = lx.next()?;
            if o.kind == Kind::Close {
                break;
            }
            if o.kind != Kind::Atom {
                return None;
            }
            match o.value.to_ascii_uppercase().as_slice() {
                b"CHILDREN" => ret.children = true,
                b"SUBSCRIBED" => ret.subscribed = true,
                b"SPECIAL-USE" => ret.special_use = true,
                b"STATUS" => {
                    if lx.next()?.kind != Kind::Open {
                        return None;
                    }
                    let items = lx
                        .atom_list()?
                        .iter()
                        .map(|i| status_item(i))
                        .collect::<Option<Vec<_>>>()?;
                    ret.status = Some(items);
                }
                _ => return None,
            }
        }
        if lx.next()?.kind != Kind::End {
            return None;
        }
    } else if t.kind != Kind::End {
        return None;
    }
    if !extended {
        return Some(None);
    }
    Some(Some(ListArgs {
        select,
        reference,
        patterns,
        ret,
        extended,
    }))
}

/// `Some(None)`: a plain CREATE for imap-codec; `None`: invalid.
#[allow(clippy::type_complexity)]
fn create(lx: &mut Lexer<'_>) -> Option<Option<(Mailbox<'static>, Vec<String>)>> {
    let t = lx.next()?;
    if !matches!(t.kind, Kind::Atom | Kind::Str) {
        return None;
    }
    let name = t.value;
    let t = lx.next()?;
    if t.kind == Kind::End {
        return Some(None);
    }
    if t.kind != Kind::Open {
        return None;
    }
    // RFC 4466 create-params; RFC 6154 §3 defines the only one known here, USE.
    let mut uses = Vec::new();
    loop {
        let p = lx.next()?;
        if p.kind == Kind::Close {
            break;
        }
        if !p.atom_is("USE") || lx.next()?.kind != Kind::Open {
            return None;
        }
        for u in lx.atom_list()? {
            uses.push(String::from_utf8(u).ok()?);
        }
    }
    if lx.next()?.kind != Kind::End {
        return None;
    }
    Some(Some((mailbox(name)?, uses)))
}

/// `RETURN (...)` right after SEARCH: the options and the byte range to cut.
#[allow(clippy::type_complexity)]
fn search_return(lx: &mut Lexer<'_>) -> Result<Option<(SearchReturn, usize, usize)>, &'static str> {
    let Some(t) = lx.next() else {
        return Ok(None);
    };
    if !t.atom_is("RETURN") {
        return Ok(None);
    }
    if lx.next().map(|t| t.kind) != Some(Kind::Open) {
        return Err("Invalid RETURN options");
    }
    let opts = lx.atom_list().ok_or("Invalid RETURN options")?;
    let mut r = SearchReturn::default();
    for o in &opts {
        match o.to_ascii_uppercase().as_slice() {
            b"MIN" => r.min = true,
            b"MAX" => r.max = true,
            b"COUNT" => r.count = true,
            b"ALL" => r.all = true,
            b"SAVE" => r.save = true,
            _ => return Err("Unknown RETURN option"),
        }
    }
    // RFC 4731 §3.1: RETURN () means RETURN (ALL).
    if opts.is_empty() {
        r.all = true;
    }
    Ok(Some((r, t.start, lx.i)))
}

/// Replaces `$` by [`SAVED_RESULT`] where command `name` takes a sequence set, in its arguments
/// starting at `from` (RFC 5182 §2.1: `$` is a sequence set, nothing else). In such a command a
/// set the client wrote as the marker's own number is spelled as a range, so the two differ.
fn replace_saved_result(bytes: &mut Vec<u8>, from: usize, name: &str) -> bool {
    if !bytes[from..].contains(&b'$') {
        return false;
    }
    let mut lx = Lexer::new(bytes);
    lx.i = from;
    let Some(sets) = sequence_set_atoms(&mut lx, name) else {
        return false;
    };
    if !sets.iter().any(|t| t.value == b"$") {
        return false;
    }
    let marker = SAVED_RESULT.to_string();
    let as_range = format!("{SAVED_RESULT}:{SAVED_RESULT}");
    for t in sets.iter().rev() {
        let at = t.start..t.start + t.value.len();
        if t.value == b"$" {
            bytes.splice(at, marker.bytes());
        } else if is_marker_number(&t.value) {
            bytes.splice(at, as_range.bytes());
        }
    }
    true
}

/// An atom imap-codec reads as the number [`SAVED_RESULT`] (leading zeros included).
fn is_marker_number(atom: &[u8]) -> bool {
    atom.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(atom)
            .ok()
            .and_then(|d| d.parse::<u32>().ok())
            == Some(SAVED_RESULT)
}

/// The atoms that stand where command `name` takes a sequence set: its first argument for FETCH,
/// STORE, COPY, MOVE and UID EXPUNGE; in SEARCH, SORT and THREAD, the sequence-set and UID search
/// keys (RFC 9051 §6.4.4, RFC 5256 §3). `None` if the arguments do not have that shape; imap-codec
/// then refuses the command.
fn sequence_set_atoms(lx: &mut Lexer<'_>, name: &str) -> Option<Vec<Tok>> {
    let mut sets = Vec::new();
    let first_key = match name {
        "SEARCH" => {
            let t = lx.next()?;
            if t.atom_is("CHARSET") {
                lx.next()?;
                lx.next()?
            } else {
                t
            }
        }
        // SORT (criteria) charset keys; THREAD algorithm charset keys.
        "SORT" => {
            if lx.next()?.kind != Kind::Open {
                return None;
            }
            lx.atom_list()?;
            lx.next()?;
            lx.next()?
        }
        "THREAD" => {
            lx.next()?;
            lx.next()?;
            lx.next()?
        }
        _ => {
            let t = lx.next()?;
            if t.kind == Kind::Atom {
                sets.push(t);
            }
            return Some(sets);
        }
    };
    let mut t = first_key;
    while t.kind != Kind::End {
        search_key(lx, t, &mut sets, 0)?;
        t = lx.next()?;
    }
    Some(sets)
}

/// One search key starting with `t` (RFC 9051 §6.4.4 and the keys imap-codec reads: RFC 5032
/// OLDER/YOUNGER, RFC 7162 MODSEQ); the atoms in sequence-set position go to `sets`.
fn search_key(lx: &mut Lexer<'_>, t: Tok, sets: &mut Vec<Tok>, depth: usize) -> Option<()> {
    if depth > MAX_SEARCH_NESTING {
        return None;
    }
    match t.kind {
        Kind::Open => loop {
            let k = lx.next()?;
            if k.kind == Kind::Close {
                return Some(());
            }
            search_key(lx, k, sets, depth + 1)?;
        },
        Kind::Atom => {
            match t.value.to_ascii_uppercase().as_slice() {
                b"ALL" | b"ANSWERED" | b"DELETED" | b"DRAFT" | b"FLAGGED" | b"NEW" | b"OLD"
                | b"RECENT" | b"SEEN" | b"UNANSWERED" | b"UNDELETED" | b"UNDRAFT"
                | b"UNFLAGGED" | b"UNSEEN" => {}
                b"BCC" | b"BEFORE" | b"BODY" | b"CC" | b"FROM" | b"KEYWORD" | b"LARGER" | b"ON"
                | b"SENTBEFORE" | b"SENTON" | b"SENTSINCE" | b"SINCE" | b"SMALLER" | b"SUBJECT"
                | b"TEXT" | b"TO" | b"UNKEYWORD" | b"OLDER" | b"YOUNGER" => {
                    lx.next()?;
                }
                b"HEADER" => {
                    lx.next()?;
                    lx.next()?;
                }
                b"UID" => {
                    let set = lx.next()?;
                    if set.kind == Kind::Atom {
                        sets.push(set);
                    }
                }
                b"NOT" => {
                    let k = lx.next()?;
                    search_key(lx, k, sets, depth + 1)?;
                }
                b"OR" => {
                    for _ in 0..2 {
                        let k = lx.next()?;
                        search_key(lx, k, sets, depth + 1)?;
                    }
                }
                // MODSEQ ["/flags/..." priv|shared|all] mod-sequence-valzer (RFC 7162 §3.1.5).
                b"MODSEQ" => {
                    if lx.next()?.kind == Kind::Str {
                        lx.next()?;
                        lx.next()?;
                    }
                }
                // A sequence set (or a key imap-codec does not know, which it refuses).
                _ => sets.push(t),
            }
            Some(())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cmd: &str) -> ListArgs {
        match preparse(cmd.as_bytes()) {
            Pre::List { args, .. } => args,
            _ => panic!("not an extended LIST: {cmd}"),
        }
    }

    #[test]
    fn list_forms() {
        assert!(matches!(preparse(b"a LIST \"\" *\r\n"), Pre::Untouched));
        let a = args(
            "a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"INBOX\" {3}\r\nx/%) RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n",
        );
        assert!(a.select.subscribed && a.select.recursive_match);
        assert_eq!(a.patterns, vec![b"INBOX".to_vec(), b"x/%".to_vec()]);
        assert!(a.ret.children);
        assert_eq!(
            a.ret.status,
            Some(vec![
                StatusDataItemName::Messages,
                StatusDataItemName::Unseen
            ])
        );
        let a = args("a list \"\" % return ()\r\n");
        assert_eq!(a.patterns, vec![b"%".to_vec()]);
        for bad in [
            "a LIST (RECURSIVEMATCH) \"\" *\r\n",
            "a LIST (FOO) \"\" *\r\n",
            "a LIST \"\" * RETURN (BAR)\r\n",
            "a LIST \"\" () \r\n",
            "a LIST \"\" * RETURN (STATUS (NOPE))\r\n",
        ] {
            assert!(matches!(preparse(bad.as_bytes()), Pre::Bad { .. }), "{bad}");
        }
    }

    #[test]
    fn create_with_use() {
        match preparse(b"t CREATE \"My Junk\" (USE (\\Junk))\r\n") {
            Pre::Create { uses, .. } => assert_eq!(uses, vec!["\\Junk".to_string()]),
            _ => panic!(),
        }
        assert!(matches!(preparse(b"t CREATE x\r\n"), Pre::Untouched));
        assert!(matches!(
            preparse(b"t CREATE x (FOO (1))\r\n"),
            Pre::Bad { .. }
        ));
    }

    #[test]
    fn search_return_and_saved_result() {
        match preparse(b"t UID SEARCH RETURN (MIN SAVE) CHARSET UTF-8 SUBJECT {2}\r\n$x\r\n") {
            Pre::Rewritten {
                bytes,
                search_return: Some(r),
                saved_result,
            } => {
                assert!(r.min && r.save && !r.all && !saved_result);
                assert_eq!(bytes, b"t UID SEARCH CHARSET UTF-8 SUBJECT {2}\r\n$x\r\n");
            }
            _ => panic!(),
        }
        match preparse(b"t SEARCH RETURN () $ SUBJECT \"$\" UID $ KEYWORD $\r\n") {
            Pre::Rewritten {
                bytes,
                search_return: Some(r),
                saved_result: true,
            } => {
                assert!(r.all);
                assert_eq!(
                    bytes,
                    b"t SEARCH 4294967295 SUBJECT \"$\" UID 4294967295 KEYWORD $\r\n"
                );
            }
            _ => panic!(),
        }
        assert!(matches!(preparse(b"t FETCH 1:* FLAGS\r\n"), Pre::Untouched));
        assert!(matches!(
            preparse(b"t FETCH 1 BODY[HEADER.FIELDS ($)]\r\n"),
            Pre::Untouched
        ));
        assert!(matches!(
            preparse(b"t SEARCH RETURN (BOGUS) ALL\r\n"),
            Pre::Bad { .. }
        ));
    }

    fn rewritten(cmd: &[u8]) -> Option<Vec<u8>> {
        match preparse(cmd) {
            Pre::Rewritten {
                bytes,
                saved_result: true,
                ..
            } => Some(bytes),
            Pre::Untouched => None,
            _ => panic!("{}", String::from_utf8_lossy(cmd)),
        }
    }

    /// RFC 5182 §2.1: `$` is a sequence set; elsewhere it is an ordinary atom (a keyword, a
    /// mailbox name, a search string), and a set the client wrote as the marker's number stays
    /// apart from `$`.
    #[test]
    fn saved_result_only_where_a_set_goes() {
        for plain in [
            &b"t STORE 1 +FLAGS ($)\r\n"[..],
            b"t STORE 1 +FLAGS $\r\n",
            b"t UID FETCH 4294967295 FLAGS\r\n",
            b"t SEARCH SUBJECT $ HEADER $ $ OR KEYWORD $ NOT BODY $\r\n",
            b"t SEARCH MODSEQ \"/flags/$\" all 5\r\n",
            b"t COPY 1 $\r\n",
        ] {
            assert_eq!(rewritten(plain), None, "{}", String::from_utf8_lossy(plain));
        }
        assert_eq!(
            rewritten(b"t UID COPY $ $\r\n").as_deref(),
            Some(&b"t UID COPY 4294967295 $\r\n"[..])
        );
        assert_eq!(
            rewritten(b"t UID SEARCH UID 4294967295 (NOT 04294967295) $\r\n").as_deref(),
            Some(&b"t UID SEARCH UID 4294967295:4294967295 (NOT 4294967295:4294967295) 4294967295\r\n"[..])
        );
        assert_eq!(
            rewritten(b"t SORT (DATE SUBJECT) UTF-8 SUBJECT $ $\r\n").as_deref(),
            Some(&b"t SORT (DATE SUBJECT) UTF-8 SUBJECT $ 4294967295\r\n"[..])
        );
        assert_eq!(
            rewritten(b"t UID THREAD REFERENCES UTF-8 OR $ 1:3\r\n").as_deref(),
            Some(&b"t UID THREAD REFERENCES UTF-8 OR 4294967295 1:3\r\n"[..])
        );
        assert_eq!(
            rewritten(b"t UID EXPUNGE $\r\n").as_deref(),
            Some(&b"t UID EXPUNGE 4294967295\r\n"[..])
        );
    }
}
