//! Command handlers, one module per family. Each is an `impl Session` block.

pub mod append;
pub mod ext;
pub mod fetch;
pub mod list;
pub mod mailbox;
pub mod quota;
pub mod search;
pub mod update;

use imap_codec::imap_types::mailbox::Mailbox;
use store::{INBOX, MAILBOX_DELIMITER};

use crate::backend::Backend;
use crate::encode;
use crate::session::Session;

/// Longest mailbox name accepted, in bytes.
pub const MAX_MAILBOX_NAME: usize = 1024;

/// The name a command gives, with INBOX normalised (RFC 9051 §5.1: case-insensitive, also as
/// the first level of a hierarchy). `None` if it is not valid UTF-8 or not a valid name.
pub fn mailbox_name(m: &Mailbox<'_>) -> Option<String> {
    let name = match m {
        Mailbox::Inbox => return Some(INBOX.to_string()),
        Mailbox::Other(o) => std::str::from_utf8(o.as_ref()).ok()?.to_string(),
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
    /// A mailbox name in a response (RFC 9051 §5.1: UTF-8 only for clients that accept it).
    pub(crate) fn mailbox_string(&self, out: &mut Vec<u8>, name: &str) {
        encode::string(out, name.as_bytes(), self.utf8());
    }
}
