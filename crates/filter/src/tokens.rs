//! Words of decoded text, Unicode-aware and bounded.
//!
//! A word is a run of alphanumeric characters (any script), with `.`, `-`, `'` and `,` kept
//! between two alphanumerics ("e-mail", "don't", "3.99", "1,000", "example.com") and the money
//! signs `$ € £ ¥` kept as letters (spam talks prices). Words are lowercased. Characters of
//! scripts written without spaces (Han, kana, Hangul syllables) are one word each: the sparse
//! bigrams built over words then give character pairs, as Rspamd does for them.

/// Longest word kept as it is, in bytes. A longer one becomes a "skip" token that keeps only
/// its first character and its length class (SpamBayes' rule): base64 debris, hashes and
/// tracking ids do not repeat, so as words they would only fill the model.
pub const MAX_WORD_BYTES: usize = 32;
/// Words shorter than this (in characters) are dropped, except single CJK characters.
pub const MIN_WORD_CHARS: usize = 2;
/// Digit runs longer than this become "num:<length>": prices and years stay words, phone
/// numbers, order ids and dates do not spread over thousands of tokens.
pub const MAX_NUMBER_DIGITS: usize = 4;

fn is_money(c: char) -> bool {
    matches!(c, '$' | '€' | '£' | '¥')
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || is_money(c)
}

fn is_joiner(c: char) -> bool {
    matches!(c, '.' | '-' | '\'' | ',' | '’')
}

/// Characters of scripts written without spaces between words.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30ff      // hiragana, katakana
        | 0x3400..=0x4dbf    // CJK extension A
        | 0x4e00..=0x9fff    // CJK unified ideographs
        | 0xac00..=0xd7af    // Hangul syllables
        | 0xf900..=0xfaff    // CJK compatibility ideographs
        | 0x20000..=0x2fa1f) // supplementary ideographs
}

/// Calls `emit` with each normalised word of `text`, in order, until it returns false. `buf` is
/// scratch space reused between words.
pub(crate) fn words(text: &str, buf: &mut String, mut emit: impl FnMut(&str) -> bool) {
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if is_cjk(c) {
            buf.clear();
            buf.push(c);
            if !emit(buf) {
                return;
            }
            continue;
        }
        if !is_word_char(c) {
            continue;
        }
        let mut end = start + c.len_utf8();
        while let Some(&(i, n)) = chars.peek() {
            if is_cjk(n) {
                break;
            }
            if is_word_char(n) {
                chars.next();
                end = i + n.len_utf8();
            } else if is_joiner(n) {
                // A joiner stays only between two word characters.
                let mut ahead = chars.clone();
                ahead.next();
                match ahead.peek() {
                    Some(&(_, a)) if is_word_char(a) && !is_cjk(a) => {
                        chars.next();
                    }
                    _ => break,
                }
            } else {
                break;
            }
        }
        if !normalise(&text[start..end], buf) {
            continue;
        }
        if !emit(buf) {
            return;
        }
    }
}

/// Lowercases `word` into `buf`, applying the length and number rules. False when the word is
/// dropped.
fn normalise(word: &str, buf: &mut String) -> bool {
    buf.clear();
    let chars = word.chars().count();
    if chars < MIN_WORD_CHARS {
        return false;
    }
    if word.len() > MAX_WORD_BYTES {
        let first = word.chars().next().unwrap_or('?');
        buf.push_str("skip:");
        buf.extend(first.to_lowercase());
        buf.push_str(&((word.len() / 10) * 10).to_string());
        return true;
    }
    let digits = word.chars().filter(char::is_ascii_digit).count();
    if digits > MAX_NUMBER_DIGITS && digits * 2 >= chars {
        buf.push_str("num:");
        buf.push_str(&digits.to_string());
        return true;
    }
    for c in word.chars() {
        if c == '’' {
            buf.push('\'');
        } else {
            buf.extend(c.to_lowercase());
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = String::new();
        words(text, &mut buf, |w| {
            out.push(w.to_string());
            true
        });
        out
    }

    #[test]
    fn splits_and_lowercases() {
        assert_eq!(
            all("FREE money!!! Don't miss: e-mail us at $9.99, now."),
            [
                "free", "money", "don't", "miss", "e-mail", "us", "at", "$9.99", "now"
            ]
        );
    }

    #[test]
    fn unicode_words() {
        assert_eq!(all("Größe ÉTÉ Привет"), ["größe", "été", "привет"]);
        assert_eq!(all("日本語 ok"), ["日", "本", "語", "ok"]);
    }

    #[test]
    fn long_words_and_numbers() {
        let long = "a".repeat(45);
        assert_eq!(all(&long), ["skip:a40"]);
        assert_eq!(
            all("call 5551234567 in 2002"),
            ["call", "num:10", "in", "2002"]
        );
    }

    #[test]
    fn joiners_only_inside() {
        assert_eq!(all("--end-- .com 'x' a.b."), ["end", "com", "a.b"]);
    }

    #[test]
    fn stops_when_asked() {
        let mut n = 0;
        let mut buf = String::new();
        words("one two three four", &mut buf, |_| {
            n += 1;
            n < 2
        });
        assert_eq!(n, 2);
    }
}
