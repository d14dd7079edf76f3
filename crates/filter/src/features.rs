//! Feature extraction: from a message's raw bytes and its `message::Analysis` (computed once by
//! the caller and shared with the rest of the pipeline) to a bounded set of hashed tokens.
//!
//! Tokens are prefixed by where they come from (a "zone": Subject words differ from body words).
//! Body and Subject words can also give orthogonal sparse bigrams (OSB, as CRM114 and Rspamd
//! use): each word paired with each of the `osb_window - 1` words before it, with the gap
//! between them; off by default ([`OSB_WINDOW`] says why). Every input is bounded: unique features, decoded HTML scanned, URLs, header
//! fields and hops looked at, and each token's length ([`crate::tokens`]). Extraction never
//! fails and never panics: a message that cannot be parsed still gives the features of what
//! could be read (at worst its size class).

use std::collections::HashSet;

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::parsers::MessageStream;
use message::{Analysis, BodyPart};

use crate::{hash, html, tokens, url};

/// Unique features kept per message. Headers, URLs and structure come first, body words last,
/// so a long message loses its tail, not its envelope.
pub const DEFAULT_MAX_FEATURES: usize = 3000;
/// Decoded body text read from the analysis, in bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Decoded HTML scanned for links and tags, in bytes, over all HTML parts.
pub const DEFAULT_MAX_HTML_BYTES: usize = 256 * 1024;
/// URLs turned into features (the first ones; the count is a feature too).
pub const DEFAULT_MAX_URLS: usize = 32;
/// Distinct header field names turned into features.
pub const MAX_HEADER_NAMES: usize = 64;
/// Header lines read from the analysis.
pub const MAX_HEADER_LINES: usize = 256;
/// `Received:` hops looked at (the newest first).
pub const MAX_RECEIVED_HOPS: usize = 8;
/// MIME parts walked for structure and attachments.
pub const MAX_MIME_PARTS: usize = 64;
/// Longest value of a "<kind>:<value>" token (addresses, MIME types), in bytes.
pub const MAX_META_VALUE_BYTES: usize = 256;
/// Words of the Subject, of the From display name and of X-Mailer used.
pub const MAX_SHORT_FIELD_WORDS: usize = 24;
/// Default OSB window: a word is paired with the `OSB_WINDOW - 1` words before it. 1: single
/// words only. Measured by 10-fold cross-validation on the SpamAssassin corpus's training
/// groups (docs/benchmarks.md): windows of 2, 3 and 5 caught less spam (90.6%, 88.0%, 81.2%
/// against 95.6%, same folds and threshold) for as many false positives or about as many
/// (5, 5, 2 of 2,750 ham against 4): with pairs, the many hammy pairs of
/// function words ("they were", "but _ _ _ of") outvote a long spam's few spammy words.
pub const OSB_WINDOW: usize = 1;
/// Largest OSB window allowed.
pub const MAX_OSB_WINDOW: usize = 5;

/// Bounds on the work done for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_features: usize,
    pub max_body_bytes: usize,
    pub max_html_bytes: usize,
    pub max_urls: usize,
    /// OSB window: each text word is paired with the `osb_window - 1` words before it
    /// (1: single words only).
    pub osb_window: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_features: DEFAULT_MAX_FEATURES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_html_bytes: DEFAULT_MAX_HTML_BYTES,
            max_urls: DEFAULT_MAX_URLS,
            osb_window: OSB_WINDOW,
        }
    }
}

/// Where a token comes from; part of its hash and of its printed name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Zone {
    Body = 1,
    Subject = 2,
    FromName = 3,
    Mailer = 4,
    /// Single tokens describing the message: "<kind>:<value>" (header names, domains, MIME
    /// structure, URL parts, size classes).
    Meta = 5,
}

impl Zone {
    fn prefix(self) -> &'static str {
        match self {
            Zone::Body => "",
            Zone::Subject => "subject:",
            Zone::FromName => "from-name:",
            Zone::Mailer => "mailer:",
            Zone::Meta => "",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Word {
    zone: Zone,
    start: u32,
    end: u32,
}

/// Marks a unigram in [`Feature::second`].
const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Feature {
    hash: u64,
    first: u32,
    second: u32,
    gap: u8,
}

/// The features of one message: unique token hashes, and enough to print each one back.
#[derive(Debug, Clone, Default)]
pub struct Features {
    arena: String,
    words: Vec<Word>,
    features: Vec<Feature>,
    seen: HashSet<u64>,
    limit: usize,
    osb_window: usize,
    /// A limit cut the extraction short.
    pub truncated: bool,
}

impl Features {
    fn new(limit: usize, osb_window: usize) -> Features {
        Features {
            limit,
            osb_window,
            seen: HashSet::with_capacity(limit.min(4096)),
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.features.len()
    }

    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// The unique token hashes, in the order they were found.
    pub fn hashes(&self) -> impl Iterator<Item = u64> + '_ {
        self.features.iter().map(|f| f.hash)
    }

    /// The feature hashes, as the store keys them.
    pub fn tokens(&self) -> Vec<u64> {
        self.hashes().collect()
    }

    /// Printable name of the feature at `index` (order of [`Features::hashes`]).
    pub fn describe(&self, index: usize) -> String {
        let Some(f) = self.features.get(index) else {
            return String::new();
        };
        let word = |i: u32| -> &str {
            self.words
                .get(i as usize)
                .and_then(|w| self.arena.get(w.start as usize..w.end as usize))
                .unwrap_or("")
        };
        let zone = self
            .words
            .get(f.first as usize)
            .map_or("", |w| w.zone.prefix());
        if f.second == NONE {
            format!("{zone}{}", word(f.first))
        } else {
            let gap = " _".repeat(f.gap as usize);
            format!("{zone}{}{gap} {}", word(f.first), word(f.second))
        }
    }

    fn full(&self) -> bool {
        self.features.len() >= self.limit
    }

    /// Stores a word's text; its index is `self.words.len() - 1` after.
    fn add_word(&mut self, zone: Zone, text: &str) -> Option<()> {
        let start = u32::try_from(self.arena.len()).ok()?;
        self.arena.push_str(text);
        let end = u32::try_from(self.arena.len()).ok()?;
        self.words.push(Word { zone, start, end });
        Some(())
    }

    fn add_feature(&mut self, hash: u64, first: u32, second: u32, gap: u8) -> bool {
        if self.full() {
            self.truncated = true;
            return false;
        }
        if self.seen.insert(hash) {
            self.features.push(Feature {
                hash,
                first,
                second,
                gap,
            });
        }
        true
    }

    /// One token. False once the feature limit is reached.
    fn token(&mut self, zone: Zone, text: &str) -> bool {
        if self.full() {
            self.truncated = true;
            return false;
        }
        let h = hash::token(zone as u8, text.as_bytes());
        if self.seen.contains(&h) {
            return true;
        }
        let Some(()) = self.add_word(zone, text) else {
            return false;
        };
        self.add_feature(h, (self.words.len() - 1) as u32, NONE, 0)
    }

    /// A "<kind>:<value>" token of the Meta zone; the value is cut to [`MAX_META_VALUE_BYTES`].
    fn meta(&mut self, kind: &str, value: &str) -> bool {
        let value = &value[..floor_boundary(value, MAX_META_VALUE_BYTES)];
        let mut s = String::with_capacity(kind.len() + 1 + value.len());
        s.push_str(kind);
        s.push(':');
        s.push_str(value);
        self.token(Zone::Meta, &s)
    }

    /// Words of `text` in `zone`, with OSB pairs when `osb`, at most `max_words` words.
    fn text(&mut self, zone: Zone, text: &str, osb: bool, max_words: usize) {
        let mut window: [Option<(u64, u32)>; MAX_OSB_WINDOW - 1] = [None; MAX_OSB_WINDOW - 1];
        let pairs = self.osb_window.clamp(1, MAX_OSB_WINDOW) - 1;
        let mut count = 0usize;
        let mut buf = String::new();
        tokens::words(text, &mut buf, |w| {
            if count >= max_words || self.full() {
                self.truncated |= self.full();
                return false;
            }
            count += 1;
            let h = hash::token(zone as u8, w.as_bytes());
            let idx = match self.add_word(zone, w) {
                Some(_) => (self.words.len() - 1) as u32,
                None => return false,
            };
            if !self.add_feature(h, idx, NONE, 0) {
                return false;
            }
            if osb {
                for (k, prev) in window.iter().take(pairs).enumerate() {
                    if let Some((ph, pidx)) = prev
                        && !self.add_feature(hash::pair(*ph, h, k as u8), *pidx, idx, k as u8)
                    {
                        return false;
                    }
                }
                window.rotate_right(1);
                window[0] = Some((h, idx));
            }
            true
        });
    }
}

/// Small counts as they are, larger ones by powers of two ("0", "1", "2", "3", "4-7", ...).
fn bucket(n: usize) -> String {
    if n < 4 {
        return n.to_string();
    }
    let low = 1usize << (usize::BITS - 1 - n.leading_zeros());
    format!("{}-{}", low, low * 2 - 1)
}

/// Header fields whose values are never used: the ones Facteur itself adds to what it delivers
/// (its verdicts: a message moved to Junk carries them, and learning from them would teach
/// the classifier its own opinion) and the per-delivery ones that say nothing of the sender.
fn ignored_field(name: &str) -> bool {
    name.starts_with("x-spam")
        || name.starts_with("x-facteur")
        || matches!(
            name,
            "authentication-results" | "return-path" | "delivered-to" | "date" | "received-spf"
        )
}

/// Features of a message, given its analysis. `raw` must be the bytes `analysis` was computed
/// from (the analysis holds byte ranges into it).
pub fn extract(raw: &[u8], analysis: &Analysis, limits: &Limits) -> Features {
    let mut f = Features::new(limits.max_features.max(1), limits.osb_window);
    headers(&mut f, analysis);
    let urls = body_structure(&mut f, raw, analysis, limits);
    let body = &analysis.search.body;
    let body = &body[..floor_boundary(body, limits.max_body_bytes)];
    url_features(&mut f, body, urls, limits.max_urls);
    meta(&mut f, raw, analysis, body);
    f.text(Zone::Body, body, true, usize::MAX);
    if analysis.truncated {
        f.truncated = true;
    }
    f
}

/// Analyses `raw` with `message`'s limits, then extracts (for callers that have no analysis).
pub fn extract_raw(raw: &[u8], limits: &Limits) -> Features {
    let analysis = message::analyze(raw, &message::Limits::default());
    extract(raw, &analysis, limits)
}

fn headers(f: &mut Features, a: &Analysis) {
    let mut names: Vec<String> = Vec::new();
    let mut hops = 0usize;
    for line in a.search.headers.lines().take(MAX_HEADER_LINES) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.is_empty() || name.len() > 76 || name.contains(char::is_whitespace) {
            continue;
        }
        let name = name.to_ascii_lowercase();
        let value = value.trim();
        // Ignored fields are not even counted as present: Facteur may add some of them only
        // to mail it judged spam.
        if ignored_field(&name) {
            continue;
        }
        if !names.contains(&name) && names.len() < MAX_HEADER_NAMES {
            f.meta("hdr", &name);
            names.push(name.clone());
        }
        match name.as_str() {
            "subject" => subject(f, value),
            "reply-to" => {
                if let Some(d) = domain_of(value) {
                    f.meta("reply-to", url::registrable(&d));
                    let from = a.headers.from.first().and_then(|x| domain_of(x));
                    let differs =
                        from.is_none_or(|fd| url::registrable(&fd) != url::registrable(&d));
                    if differs {
                        f.meta("reply-to", "differs-from-from");
                    }
                }
            }
            "x-mailer" | "user-agent" => f.text(Zone::Mailer, value, false, MAX_SHORT_FIELD_WORDS),
            "received" if hops < MAX_RECEIVED_HOPS => {
                hops += 1;
                received(f, value);
            }
            "message-id" => match domain_of(value) {
                Some(d) => {
                    f.meta("message-id", url::registrable(&d));
                }
                None => {
                    f.meta("message-id", "no-domain");
                }
            },
            "precedence" | "x-priority" | "importance" | "x-msmail-priority" => {
                let v: String = value
                    .chars()
                    .take(16)
                    .filter(|c| c.is_alphanumeric())
                    .collect::<String>()
                    .to_lowercase();
                f.meta(&name, &v);
            }
            "content-type" => {
                if let Some(cs) = value.to_ascii_lowercase().split("charset=").nth(1) {
                    let cs: String = cs
                        .trim_start_matches('"')
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                        .take(24)
                        .collect();
                    f.meta("charset", &cs);
                }
            }
            _ => {}
        }
    }
    let received_count = a
        .search
        .headers
        .lines()
        .take(MAX_HEADER_LINES)
        .filter(|l| {
            l.as_bytes()
                .get(..9)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"received:"))
        })
        .count();
    f.meta("received-hops", &bucket(received_count));

    // Sender, from the analysis' decoded addresses.
    match a.headers.from.first() {
        Some(addr) => {
            f.meta("from", addr);
            if let Some(d) = domain_of(addr) {
                f.meta("from-domain", url::registrable(&d));
            }
        }
        None => {
            f.meta("from", "none");
        }
    }
    if let Some(name) = &a.headers.from_display
        && a.headers.from.first() != Some(name)
    {
        if name.contains('@') {
            f.meta("from-name", "has-address");
        }
        f.text(Zone::FromName, name, false, MAX_SHORT_FIELD_WORDS);
    }
    f.meta("to-count", &bucket(a.headers.to.len()));
    f.meta("cc-count", &bucket(a.headers.cc.len()));
    if a.headers.message_id.is_none() {
        f.meta("message-id", "none");
    }
    if !a.headers.in_reply_to.is_empty() || !a.headers.references.is_empty() {
        f.meta("thread", "reply");
    }
}

fn subject(f: &mut Features, value: &str) {
    if value.is_empty() {
        f.meta("subject", "empty");
        return;
    }
    let letters = value.chars().filter(|c| c.is_alphabetic()).count();
    let upper = value.chars().filter(|c| c.is_uppercase()).count();
    if letters >= 8 && upper * 2 > letters {
        f.meta("subject", "mostly-capitals");
    }
    let bangs = value.matches('!').count();
    if bangs > 0 {
        f.meta("subject-bangs", &bucket(bangs));
    }
    if !value.is_ascii() {
        f.meta("subject", "non-ascii");
    }
    let lower = value.trim_start().to_ascii_lowercase();
    if lower.starts_with("re:") || lower.starts_with("fw:") || lower.starts_with("fwd:") {
        f.meta("subject", "reply-or-forward");
    }
    f.text(Zone::Subject, value, true, MAX_SHORT_FIELD_WORDS);
}

/// The shape of one `Received:` field (RFC 5321 §4.4): the protocol, the relaying domain, and
/// what the sending host called itself.
fn received(f: &mut Features, value: &str) {
    let value = value.split(';').next().unwrap_or("");
    let mut words = value.split_whitespace();
    let (mut from, mut by, mut with) = (None, None, None);
    while let Some(w) = words.next() {
        match w.to_ascii_lowercase().as_str() {
            "from" if from.is_none() => from = words.next(),
            "by" if by.is_none() => by = words.next(),
            "with" if with.is_none() => with = words.next(),
            _ => {}
        }
    }
    if let Some(w) = with {
        let w: String = w.chars().take(16).collect::<String>().to_ascii_lowercase();
        f.meta("received-with", &w);
    }
    if let Some(b) = by.map(clean_host).filter(|b| b.contains('.')) {
        f.meta("received-by", url::registrable(&b));
    }
    match from.map(clean_host) {
        Some(h) if h.parse::<std::net::IpAddr>().is_ok() => {
            f.meta("received-from", "ip-literal");
        }
        Some(h) if h.contains('.') => {
            f.meta("received-from", url::registrable(&h));
        }
        Some(_) => {
            f.meta("received-from", "no-dot");
        }
        None => {}
    }
    if value.contains("unknown") {
        f.meta("received", "unknown-host");
    }
}

fn clean_host(h: &str) -> String {
    h.trim_matches(|c: char| !c.is_alphanumeric())
        .chars()
        .take(url::MAX_HOST_BYTES)
        .collect::<String>()
        .to_lowercase()
}

/// The domain after the last '@' of an address or Message-ID, lowercase, without brackets.
fn domain_of(s: &str) -> Option<String> {
    let at = s.rfind('@')?;
    let d: String = s[at + 1..]
        .chars()
        .take_while(|c| !matches!(c, '>' | ' ' | ',' | ';' | ')' | '"'))
        .take(url::MAX_HOST_BYTES)
        .collect::<String>()
        .trim_end_matches('.')
        .to_lowercase();
    (!d.is_empty()).then_some(d)
}

fn media(p: &BodyPart) -> String {
    format!("{}/{}", p.content_type, p.subtype)
}

/// MIME structure, attachments and HTML. Returns the links found in HTML.
fn body_structure(f: &mut Features, raw: &[u8], a: &Analysis, limits: &Limits) -> Vec<String> {
    let root = &a.body;
    f.meta("mime-root", &media(root));
    // The shape of the first two levels: "multipart/alternative(text/plain,text/html)".
    let mut shape = media(root);
    if !root.children.is_empty() {
        let kids: Vec<String> = root.children.iter().take(6).map(media).collect();
        shape.push('(');
        shape.push_str(&kids.join(","));
        shape.push(')');
    }
    f.meta("mime-shape", &shape);

    let mut leaves: Vec<&BodyPart> = Vec::new();
    let mut stack = vec![root];
    let mut walked = 0;
    while let Some(p) = stack.pop() {
        walked += 1;
        if walked > MAX_MIME_PARTS {
            f.truncated = true;
            break;
        }
        if p.children.is_empty() {
            leaves.push(p);
        } else {
            stack.extend(p.children.iter().rev());
        }
    }
    f.meta("mime-parts", &bucket(leaves.len()));

    let mut html_left = limits.max_html_bytes;
    let mut links = Vec::new();
    let (mut has_plain, mut has_html, mut attachments) = (false, false, 0usize);
    let mut scan = html::HtmlScan::default();
    for p in &leaves {
        let attachment = p.file_name().is_some()
            || p.disposition
                .as_ref()
                .is_some_and(|(d, _)| d == "attachment");
        if attachment {
            attachments += 1;
            f.meta("attachment-type", &media(p));
            if let Some(name) = p.file_name() {
                attachment_name(f, name);
            }
            continue;
        }
        if p.content_type == "text" {
            if let Some(cs) = p.param("charset") {
                let cs: String = cs.chars().take(24).collect::<String>().to_ascii_lowercase();
                f.meta("charset", &cs);
            }
            f.meta("text-encoding", &p.encoding.to_ascii_lowercase());
            match p.subtype.as_str() {
                "plain" => has_plain = true,
                "html" => {
                    has_html = true;
                    if html_left > 0 {
                        let text = decode(p, p.body_bytes(raw), html_left);
                        html_left = html_left.saturating_sub(text.len().max(1));
                        let s = html::scan(&text);
                        for l in s.links {
                            if links.len() < html::MAX_LINKS {
                                links.push(l);
                            }
                        }
                        scan.tags += s.tags;
                        scan.images += s.images;
                        scan.forms += s.forms;
                        scan.scripts += s.scripts;
                        scan.iframes += s.iframes;
                        scan.fonts += s.fonts;
                        scan.tables += s.tables;
                        scan.password_inputs += s.password_inputs;
                    } else {
                        f.truncated = true;
                    }
                }
                other => {
                    f.meta("text-subtype", other);
                }
            }
        } else {
            f.meta("inline-type", &media(p));
        }
    }
    if has_html && !has_plain {
        f.meta("mime", "html-only");
    }
    if has_html {
        f.meta("html-tags", &bucket(scan.tags));
        f.meta("html-images", &bucket(scan.images));
        f.meta("html-fonts", &bucket(scan.fonts));
        f.meta("html-tables", &bucket(scan.tables));
        for (kind, n) in [
            ("html-forms", scan.forms),
            ("html-scripts", scan.scripts),
            ("html-iframes", scan.iframes),
            ("html-password-inputs", scan.password_inputs),
        ] {
            if n > 0 {
                f.meta(kind, &bucket(n));
            }
        }
    }
    f.meta("attachments", &bucket(attachments));
    links
}

fn attachment_name(f: &mut Features, name: &str) {
    let lower = name.to_lowercase();
    let mut exts = lower.rsplit('.');
    let last = exts.next().unwrap_or("");
    if lower.contains('.') && !last.is_empty() && last.len() <= 8 {
        f.meta("attachment-ext", last);
        // "invoice.pdf.exe": a document name hiding an executable one.
        if let Some(prev) = exts.next()
            && exts.next().is_some()
            && (2..=4).contains(&prev.len())
            && prev.chars().all(|c| c.is_ascii_alphanumeric())
        {
            f.meta("attachment", "double-extension");
        }
    }
}

/// Transfer-decodes a text part (RFC 2045 §6) and converts it to UTF-8, reading at most about
/// `budget` bytes of it.
fn decode(part: &BodyPart, body: &[u8], budget: usize) -> String {
    // Encoded text is longer than decoded text (base64 by 4/3): read a little more than needed.
    let cap = budget.saturating_mul(3) / 2 + 4;
    let body = if body.len() > cap {
        let cut = &body[..cap];
        cut.iter()
            .rposition(|&b| b == b'\n')
            .map_or(cut, |p| &cut[..p + 1])
    } else {
        body
    };
    let decoded: Vec<u8> = match part.encoding.as_str() {
        "BASE64" => {
            let (end, bytes) = MessageStream::new(body).decode_base64_mime(b"");
            if end == usize::MAX {
                body.to_vec()
            } else {
                bytes.into_owned()
            }
        }
        "QUOTED-PRINTABLE" => {
            let (end, bytes) = MessageStream::new(body).decode_quoted_printable_mime(b"");
            if end == usize::MAX {
                body.to_vec()
            } else {
                bytes.into_owned()
            }
        }
        _ => body.to_vec(),
    };
    let mut text = match part
        .param("charset")
        .and_then(|c| charset_decoder(c.as_bytes()))
    {
        Some(decode) => decode(&decoded),
        None => String::from_utf8_lossy(&decoded).into_owned(),
    };
    let cut = floor_boundary(&text, budget);
    text.truncate(cut);
    text
}

fn url_features(f: &mut Features, body: &str, html_links: Vec<String>, max_urls: usize) {
    let mut urls: Vec<String> = Vec::new();
    let mut total = 0usize;
    for l in html_links {
        total += 1;
        if urls.len() < max_urls && !urls.contains(&l) {
            urls.push(l);
        }
    }
    url::find_in_text(body, |u| {
        total += 1;
        if urls.len() < max_urls && !urls.iter().any(|x| x == u) {
            urls.push(u.to_string());
        }
        // Count a little past the limit, for the count class, then stop.
        total < max_urls * 4
    });
    f.meta("urls", &bucket(total));
    let mut domains: Vec<String> = Vec::new();
    for u in &urls {
        let Some(p) = url::parse(u) else { continue };
        f.meta("url-scheme", &p.scheme);
        if p.ip || p.numeric_host {
            f.meta("url", "ip-host");
        } else {
            f.meta("url-host", &p.host);
            let reg = url::registrable(&p.host).to_string();
            f.meta("url-domain", &reg);
            if let Some(s) = url::suffix(&p.host) {
                f.meta("url-tld", s);
            }
            if !domains.contains(&reg) {
                domains.push(reg);
            }
        }
        for (flag, name) in [
            (p.userinfo, "userinfo"),
            (p.port, "port"),
            (p.encoded_host, "encoded-host"),
            (p.idn, "idn-host"),
            (p.query, "query"),
        ] {
            if flag {
                f.meta("url", name);
            }
        }
        f.meta("url-depth", &p.depth.to_string());
        if let Some(s) = &p.first_segment {
            f.meta("url-path", s);
        }
        if let Some(e) = &p.extension {
            f.meta("url-ext", e);
        }
    }
    f.meta("url-domains", &bucket(domains.len()));
}

fn meta(f: &mut Features, raw: &[u8], a: &Analysis, body: &str) {
    f.meta("size-kib", &bucket(raw.len() / 1024));
    let words = body.split_whitespace().take(4096).count();
    f.meta("body-words", &bucket(words));
    if a.truncated {
        f.meta("analysis", "truncated");
    }
}

fn floor_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut cut = max;
    while cut > 0 && !s.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(f: &Features) -> Vec<String> {
        (0..f.len()).map(|i| f.describe(i)).collect()
    }

    const MSG: &[u8] = b"From: \"Cheap Deals\" <deals@mailer.example.co.uk>\r\n\
Reply-To: <x@other.example>\r\n\
To: a@b.example\r\n\
Subject: FREE MONEY now!!!\r\n\
Received: from unknown (HELO dd_it7) ([210.97.77.167]) by mx.example.net with SMTP; Mon, 1 Jan 2024 10:00:00 +0000\r\n\
X-Mailer: Microsoft Outlook Express 6.00\r\n\
X-Spam-Status: Yes, score=99\r\n\
Message-ID: <1@mailer.example.co.uk>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain\r\n\
\r\n\
Click here to get free money at http://www.win.example.com/cgi-bin/x.php?id=1 today\r\n\
--b\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
<a href=3D\"http://192.168.1.1/login\"><img src=3D\"http://img.example.org/a.gif\">Click</a>\r\n\
--b\r\n\
Content-Type: application/octet-stream; name=\"invoice.pdf.exe\"\r\n\
Content-Disposition: attachment; filename=\"invoice.pdf.exe\"\r\n\
\r\n\
AAAA\r\n\
--b--\r\n";

    #[test]
    fn features_of_a_message() {
        let osb = Limits {
            osb_window: 5,
            ..Limits::default()
        };
        let f = extract_raw(MSG, &osb);
        let n = names(&f);
        let has = |s: &str| n.iter().any(|x| x == s);
        for want in [
            "subject:free",
            "subject:free money",
            "subject:free _ now",
            "subject-bangs:3",
            "subject:mostly-capitals",
            "from:deals@mailer.example.co.uk",
            "from-domain:example.co.uk",
            "from-name:cheap",
            "reply-to:other.example",
            "reply-to:differs-from-from",
            "mailer:microsoft",
            "received-with:smtp",
            "received-by:example.net",
            "received-from:no-dot",
            "received:unknown-host",
            "message-id:example.co.uk",
            "hdr:x-mailer",
            "mime-root:multipart/alternative",
            "mime-shape:multipart/alternative(text/plain,text/html,application/octet-stream)",
            "attachment-ext:exe",
            "attachment:double-extension",
            "url-host:www.win.example.com",
            "url-domain:example.com",
            "url-path:cgi-bin",
            "url-ext:php",
            "url:query",
            "url:ip-host",
            "url-domain:example.org",
            "html-images:1",
            "click",
            "free money",
            "click _ _ get",
        ] {
            assert!(has(want), "missing {want:?} in {n:#?}");
        }
        // Our own verdict header is never read back.
        assert!(
            !n.iter()
                .any(|x| x.contains("x-spam") || x.contains("99") || x.contains("yes")),
            "{n:?}"
        );
        // Unique hashes.
        let mut h = f.tokens();
        let len = h.len();
        h.sort_unstable();
        h.dedup();
        assert_eq!(h.len(), len);
    }

    #[test]
    fn single_words_by_default() {
        let f = extract_raw(MSG, &Limits::default());
        let n = names(&f);
        assert!(n.iter().any(|x| x == "subject:money"));
        assert!(!n.iter().any(|x| x.contains(' ')), "{n:?}");
    }

    #[test]
    fn feature_limit_holds() {
        let mut body = String::from("Subject: x\r\n\r\n");
        for i in 0..100_000 {
            body.push_str(&format!("w{i} "));
        }
        let lim = Limits {
            max_features: 500,
            ..Limits::default()
        };
        let f = extract_raw(body.as_bytes(), &lim);
        assert_eq!(f.len(), 500);
        assert!(f.truncated);
    }

    #[test]
    fn garbage_and_empty() {
        for raw in [
            &b""[..],
            b"\xff\xfe\x00\x01",
            b"\r\n\r\n",
            b"From:\r\nSubject:\r\n\r\n",
        ] {
            let f = extract_raw(raw, &Limits::default());
            assert!(!f.is_empty());
            for i in 0..f.len() {
                let _ = f.describe(i);
            }
        }
    }

    /// Found by the SpamAssassin corpus: a header line with multi-byte characters around the
    /// ninth byte once made a string slice panic.
    #[test]
    fn multibyte_header_lines() {
        let raw = "To: \u{fffd}\u{fffd}\u{fffd}R\u{fffd}W.txt@dogma.example.org\r\n\
                   Received: from x by y\r\n\r\nbody\r\n";
        let f = extract_raw(raw.as_bytes(), &Limits::default());
        assert!((0..f.len()).any(|i| f.describe(i) == "received-hops:1"));
    }

    /// Bad input from the issue: 100,000 URLs (as text and as HTML links), a 50 MB message,
    /// binary garbage. The output stays within its bounds (time and memory are the bench's and
    /// the fuzz target's business; here the bounds on what is produced).
    #[test]
    fn hostile_messages_stay_bounded() {
        let lim = Limits::default();
        let mut text = String::from("Subject: links\r\nContent-Type: text/plain\r\n\r\n");
        let mut html = String::from("Subject: links\r\nContent-Type: text/html\r\n\r\n");
        for i in 0..100_000 {
            text.push_str(&format!("http://h{i}.example{}.com/p?q={i} ", i % 97));
            html.push_str(&format!("<a href=\"http://h{i}.example.org/\">x</a>"));
        }
        for raw in [text, html] {
            let f = extract_raw(raw.as_bytes(), &lim);
            let n = names(&f);
            assert!(f.len() <= lim.max_features);
            let hosts = n.iter().filter(|x| x.starts_with("url-host:")).count();
            assert!(hosts <= lim.max_urls, "{hosts} URL hosts");
            assert!(n.iter().any(|x| x.starts_with("urls:")));
        }

        let mut big = b"Subject: big\r\nContent-Type: text/plain\r\n\r\n".to_vec();
        let line = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod\r\n";
        while big.len() < 50 * 1024 * 1024 {
            big.extend_from_slice(line);
        }
        let f = extract_raw(&big, &lim);
        assert!(f.len() <= lim.max_features);
        assert!(names(&f).iter().any(|x| x.starts_with("size-kib:")));

        let garbage: Vec<u8> = (0..1_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let f = extract_raw(&garbage, &lim);
        assert!(f.len() <= lim.max_features);
        for i in 0..f.len() {
            assert!(f.describe(i).len() <= 2 * MAX_META_VALUE_BYTES);
        }
    }

    #[test]
    fn buckets() {
        assert_eq!(bucket(0), "0");
        assert_eq!(bucket(3), "3");
        assert_eq!(bucket(4), "4-7");
        assert_eq!(bucket(9), "8-15");
    }
}
