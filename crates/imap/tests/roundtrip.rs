//! Property tests of what the IMAP server writes, read back by an independent parser
//! (imap-codec's response and sequence-set parsers): ENVELOPE strings of any content (quoted,
//! escaped, literal, UTF-8), compact sequence sets, INTERNALDATE, and modified UTF-7 mailbox
//! names (decode(encode(x)) == x).

use imap::{encode, utf7};
use imap_codec::ResponseCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::core::NString;
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::imap_types::sequence::SequenceSet;
use message::{Address, Envelope};
use proptest::prelude::*;

/// Any text without NUL (a literal cannot carry NUL; the encoder turns it into a space):
/// printable ASCII, quotes and backslashes, CR/LF/TAB and other controls, non-ASCII.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        "[\"\\\\a-z ]{0,20}",
        "[\\x01-\\x7f]{0,30}",
        "\\PC{0,20}",
        "[a-z]{1100,1200}", // longer than a quoted string may be
    ]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(text())
}

fn address() -> impl Strategy<Value = Address> {
    (opt_text(), opt_text(), opt_text(), opt_text()).prop_map(|(name, adl, mailbox, host)| {
        Address {
            name,
            adl,
            mailbox,
            host,
        }
    })
}

fn envelope() -> impl Strategy<Value = Envelope> {
    let list = || prop::collection::vec(address(), 0..3);
    (
        (opt_text(), opt_text(), list(), list(), list()),
        (list(), list(), list(), opt_text(), opt_text()),
    )
        .prop_map(
            |((date, subject, from, sender, reply_to), (to, cc, bcc, in_reply_to, message_id))| {
                Envelope {
                    date,
                    subject,
                    from,
                    sender,
                    reply_to,
                    to,
                    cc,
                    bcc,
                    in_reply_to,
                    message_id,
                }
            },
        )
}

fn back(n: &NString<'_>) -> Option<String> {
    n.0.as_ref()
        .map(|s| String::from_utf8(s.as_ref().to_vec()).expect("UTF-8 back"))
}

fn back_addresses(list: &[imap_codec::imap_types::envelope::Address<'_>]) -> Vec<Address> {
    list.iter()
        .map(|a| Address {
            name: back(&a.name),
            adl: back(&a.adl),
            mailbox: back(&a.mailbox),
            host: back(&a.host),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn envelope_parses_back(e in envelope(), utf8 in any::<bool>()) {
        let mut line = b"* 1 FETCH (ENVELOPE ".to_vec();
        encode::envelope(&mut line, &e, utf8);
        line.extend_from_slice(b")\r\n");
        let (rest, resp) = ResponseCodec::default()
            .decode(&line)
            .unwrap_or_else(|err| panic!("{err:?}: {}", String::from_utf8_lossy(&line)));
        prop_assert!(rest.is_empty());
        let Response::Data(Data::Fetch { items, .. }) = resp else {
            panic!("not a FETCH response")
        };
        let MessageDataItem::Envelope(got) = items.as_ref()[0].clone() else {
            panic!("not an ENVELOPE")
        };
        let got = Envelope {
            date: back(&got.date),
            subject: back(&got.subject),
            from: back_addresses(&got.from),
            sender: back_addresses(&got.sender),
            reply_to: back_addresses(&got.reply_to),
            to: back_addresses(&got.to),
            cc: back_addresses(&got.cc),
            bcc: back_addresses(&got.bcc),
            in_reply_to: back(&got.in_reply_to),
            message_id: back(&got.message_id),
        };
        prop_assert_eq!(got, e);
    }

    #[test]
    fn sequence_set_parses_back(nums in prop::collection::vec(1u32..5000, 1..200)) {
        let text = encode::sequence_set(&nums);
        let set: SequenceSet = text.parse().expect("valid sequence set");
        let largest = std::num::NonZeroU32::new(5000).unwrap();
        let mut got: Vec<u32> = set.iter(largest).map(|n| n.get()).collect();
        got.sort_unstable();
        got.dedup();
        let mut want = nums.clone();
        want.sort_unstable();
        want.dedup();
        prop_assert_eq!(got, want, "{}", text);
    }

    #[test]
    fn internal_date_parses_back(unix in 0i64..4_102_444_800) {
        let text = encode::internal_date(unix);
        let line = format!("* 1 FETCH (INTERNALDATE {text})\r\n");
        let (_, resp) = ResponseCodec::default()
            .decode(line.as_bytes())
            .unwrap_or_else(|err| panic!("{err:?}: {line}"));
        let Response::Data(Data::Fetch { items, .. }) = resp else {
            panic!("not a FETCH response")
        };
        let MessageDataItem::InternalDate(d) = items.as_ref()[0].clone() else {
            panic!("not an INTERNALDATE")
        };
        prop_assert_eq!(d.as_ref().timestamp(), unix);
    }

    #[test]
    fn mailbox_names_survive_modified_utf7(name in "\\PC{0,30}") {
        let wire = utf7::encode(&name);
        prop_assert!(wire.is_ascii());
        prop_assert_eq!(utf7::decode(wire.as_bytes()), Some(name));
    }
}
