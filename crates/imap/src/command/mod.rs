//! Command handlers, one module per family. Each is an `impl Session` block.

pub mod append;
pub mod binary;
pub mod ext;
pub mod fetch;
pub mod list;
pub mod mailbox;
pub mod quota;
pub mod search;
pub mod sort;
pub mod thread;
pub mod update;

use imap_codec::imap_types::mailbox::Mailbox;
use store::{INBOX, MAILBOX_DELIMITER};

use crate::backend::Backend;
use crate::encode;
use crate::session::Session;
use crate::utf7;

/// Longest mailbox name accepted, in bytes.
pub const MAX_MAILBOX_NAME: usize = 1024;

/// A name as the client wrote it, in UTF-8: with `utf8` (IMAP4rev2 or UTF8=ACCEPT) as is,
/// otherwise decoded from modified UTF-7 (RFC 3501 §5.1.3). 8-bit bytes from a client that did
/// not enable UTF-8 are still taken as UTF-8: they cannot be modified UTF-7.
pub fn decode_name(raw: &[u8], utf8: bool) -> Option<String> {
    if utf8 || !raw.is_ascii() {
        return std::str::from_utf8(raw).ok().map(str::to_string);
    }
    utf7::decode(raw)
}

/// The name a command gives, with INBOX normalised (RFC 9051 §5.1: case-insensitive, also as
/// the first level of a hierarchy). `None` if it cannot be decoded or is not a valid name.
pub fn mailbox_name(m: &Mailbox<'_>, utf8: bool) -> Option<String> {
    let name = match m {
        Mailbox::Inbox => return Some(INBOX.to_string()),
        Mailbox::Other(o) => decode_name(o.as_ref(), utf8)?,
    };
    let name = name.trim_end_matches(MAILBOX_DELIMITER);
    if name.is_empty()
        || name.len() > MAX_MAILBOX_NAME
        || name.starts_with(MAILBOX_DELIMITER)
        || name.chars().any(|c| c.is_control())
        || name.split(MAILBOX_DELIMITER).any(str::is_empty)
    {
        return None;
    }
    Some(normalize_inbox(name))
}

pub fn normalize_inbox(name: &str) -> String {
    match name.split_once(MAILBOX_DELIMITER) {
        Some((first, rest)) if first.eq_ignore_ascii_case(INBOX) => {
            format!("{INBOX}{MAILBOX_DELIMITER}{rest}")
        }
        None if name.eq_ignore_ascii_case(INBOX) => INBOX.to_string(),
        _ => name.to_string(),
    }
}

impl<B: Backend> Session<B> {
    /// A mailbox name in a response: UTF-8 for clients that accept it (RFC 9051 §5.1, RFC 6855),
    /// modified UTF-7 for the others (RFC 3501 §5.1.3).
    pub(crate) fn mailbox_string(&self, out: &mut Vec<u8>, name: &str) {
        if self.utf8() {
            encode::string(out, name.as_bytes(), true);
        } else {
            encode::string(out, utf7::encode(name).as_bytes(), false);
        }
    }
}
