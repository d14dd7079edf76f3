//! What the classifier reads from HTML besides its text (which `message` already extracts for
//! search): link targets (`href`, `src`, `action`) and the count of a few tags spam favours.
//! A forgiving single pass over the bytes: never fails, linear in the input.

/// Links collected from one message's HTML.
pub const MAX_LINKS: usize = 64;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HtmlScan {
    /// `href`, `src` and `action` values, entity `&amp;` decoded, at most [`MAX_LINKS`].
    pub links: Vec<String>,
    pub tags: usize,
    pub images: usize,
    pub forms: usize,
    pub scripts: usize,
    pub iframes: usize,
    pub fonts: usize,
    pub tables: usize,
    /// `<input type=password>`: a form asking for credentials.
    pub password_inputs: usize,
}

/// Longest attribute value kept, in bytes.
const MAX_ATTR_BYTES: usize = crate::url::MAX_URL_BYTES;

pub fn scan(html: &str) -> HtmlScan {
    let b = html.as_bytes();
    let mut out = HtmlScan::default();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        // Comments: skip to "-->".
        if b[i..].starts_with(b"<!--") {
            i = find(b, i + 4, b"-->").map_or(b.len(), |e| e + 3);
            continue;
        }
        i += 1;
        let name_start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric()) {
            i += 1;
        }
        let name = &b[name_start..i];
        if name.is_empty() {
            continue;
        }
        out.tags += 1;
        let lower = name.to_ascii_lowercase();
        match lower.as_slice() {
            b"img" => out.images += 1,
            b"form" => out.forms += 1,
            b"script" => out.scripts += 1,
            b"iframe" => out.iframes += 1,
            b"font" => out.fonts += 1,
            b"table" => out.tables += 1,
            _ => {}
        }
        // Attributes up to '>'.
        let mut input_password = false;
        loop {
            while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
                i += 1;
            }
            if i >= b.len() || b[i] == b'>' {
                i += 1;
                break;
            }
            let an_start = i;
            while i < b.len() && !matches!(b[i], b'=' | b'>' | b'/') && !b[i].is_ascii_whitespace()
            {
                i += 1;
            }
            let attr = b[an_start..i].to_ascii_lowercase();
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i >= b.len() || b[i] != b'=' {
                if i == an_start {
                    i += 1; // a lone '/' or stray byte: move on
                }
                continue;
            }
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let (v_start, v_end) = match b.get(i) {
                Some(&q @ (b'"' | b'\'')) => {
                    let s = i + 1;
                    let e = b[s..]
                        .iter()
                        .position(|&c| c == q)
                        .map_or(b.len(), |p| s + p);
                    i = (e + 1).min(b.len());
                    (s, e)
                }
                _ => {
                    let s = i;
                    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                        i += 1;
                    }
                    (s, i)
                }
            };
            let value = html.get(v_start..v_end).unwrap_or("");
            match attr.as_slice() {
                b"href" | b"src" | b"action" if out.links.len() < MAX_LINKS => {
                    let v = &value[..floor_boundary(value, MAX_ATTR_BYTES)];
                    out.links.push(v.trim().replace("&amp;", "&"));
                }
                b"type" if lower == b"input" && value.eq_ignore_ascii_case("password") => {
                    input_password = true;
                }
                _ => {}
            }
        }
        if input_password {
            out.password_inputs += 1;
        }
    }
    out
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
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

    #[test]
    fn links_and_tags() {
        let s = scan(
            "<html><!-- <a href=no> --><A HREF=\"http://x.org/?a=1&amp;b=2\">x</a>\
             <img src='http://i.example/p.gif'><form action=http://f.example/login>\
             <input type=password name=p></form><font color=red>",
        );
        assert_eq!(
            s.links,
            [
                "http://x.org/?a=1&b=2",
                "http://i.example/p.gif",
                "http://f.example/login"
            ]
        );
        assert_eq!(
            (s.images, s.forms, s.fonts, s.password_inputs),
            (1, 1, 1, 1)
        );
    }

    #[test]
    fn unterminated_input() {
        for t in [
            "<a href=\"http://x",
            "<",
            "<a",
            "<a href",
            "<a href=",
            "<!--",
            "<a b c=>",
        ] {
            let _ = scan(t);
        }
        assert_eq!(scan("<a href=\"é").links, ["é"]);
    }

    #[test]
    fn links_are_bounded() {
        let many = "<a href=http://x.org/>".repeat(MAX_LINKS * 3);
        assert_eq!(scan(&many).links.len(), MAX_LINKS);
    }
}
