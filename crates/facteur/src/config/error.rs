//! Config errors, each located at a line of the file: turns toml's errors (byte spans) and
//! validation failures (key paths) into one sentence naming the file, line and key.

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::PathBuf;

use toml::de::{DeTable, DeValue};

use super::Invalid;
use super::keys::{KEYS, SECTIONS};

/// Where an error is: the file (or other origin) and, when known, the 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub origin: String,
    pub line: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.origin),
            None => f.write_str(&self.origin),
        }
    }
}

/// What an unknown key probably is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyHint {
    /// The nearest known name: close enough to be a typo.
    Typo(&'static str),
    /// A known key of this other section.
    Elsewhere(&'static str),
}

/// The names expected where an unknown key is: the keys of its section, or the sections.
fn expected_names(section: Option<&str>) -> Vec<&'static str> {
    match section {
        Some(section) => KEYS
            .iter()
            .filter(|k| k.section == section)
            .map(|k| k.key)
            .collect(),
        None => SECTIONS.iter().map(|s| s.name).collect(),
    }
}

#[derive(Debug)]
pub enum ConfigError {
    NotFound {
        path: PathBuf,
    },
    Read {
        path: PathBuf,
        source: io::Error,
    },
    Syntax {
        at: Location,
        column: Option<usize>,
        message: String,
    },
    /// `section` is `None` for a key at the top level, where only sections are allowed.
    UnknownKey {
        at: Location,
        section: Option<String>,
        key: String,
        is_table: bool,
        hint: Option<KeyHint>,
    },
    WrongType {
        at: Location,
        key: String,
        expected: String,
        found: String,
    },
    InvalidValue {
        at: Location,
        key: String,
        message: String,
    },
    /// Several of the above, in file order: every problem of a file is reported at once.
    Many(Vec<ConfigError>),
}

impl ConfigError {
    /// One error as itself, several as [`ConfigError::Many`] sorted by line.
    pub(super) fn from_list(mut errors: Vec<ConfigError>) -> ConfigError {
        if errors.len() == 1
            && let Some(e) = errors.pop()
        {
            return e;
        }
        errors.sort_by_key(|e| e.line().unwrap_or(usize::MAX));
        ConfigError::Many(errors)
    }

    /// Each error on its own (a `Many` unfolded).
    pub fn errors(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Many(list) => list.iter().flat_map(ConfigError::errors).collect(),
            other => vec![other],
        }
    }

    /// The 1-based line the error is on (the first one's, for several), when it is about the
    /// file's content and could be located.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::NotFound { .. } | ConfigError::Read { .. } => None,
            ConfigError::Many(list) => list.iter().find_map(ConfigError::line),
            ConfigError::Syntax { at, .. }
            | ConfigError::UnknownKey { at, .. }
            | ConfigError::WrongType { at, .. }
            | ConfigError::InvalidValue { at, .. } => at.line,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NotFound { path } => {
                write!(f, "{}: config file not found", path.display())
            }
            ConfigError::Read { path, source } => {
                write!(f, "{}: cannot read config file: {source}", path.display())
            }
            ConfigError::Syntax {
                at,
                column,
                message,
            } => match column {
                Some(column) => write!(f, "{at}: TOML syntax error at column {column}: {message}"),
                None => write!(f, "{at}: TOML syntax error: {message}"),
            },
            ConfigError::UnknownKey {
                at,
                section: Some(section),
                key,
                hint,
                ..
            } => match hint {
                Some(KeyHint::Elsewhere(other)) => write!(
                    f,
                    "{at}: unknown key `{key}` in [{section}]; it belongs in [{other}]"
                ),
                Some(KeyHint::Typo(near)) => write!(
                    f,
                    "{at}: unknown key `{key}` in [{section}]; did you mean `{near}`?"
                ),
                None => write!(
                    f,
                    "{at}: unknown key `{key}` in [{section}] (expected one of {})",
                    expected_names(Some(section)).join(", ")
                ),
            },
            ConfigError::UnknownKey {
                at,
                section: None,
                key,
                is_table,
                hint,
            } => {
                let what = if *is_table {
                    format!("section [{key}]")
                } else {
                    format!("top-level key `{key}`")
                };
                match hint {
                    Some(KeyHint::Elsewhere(section)) => write!(
                        f,
                        "{at}: unknown {what}; `{key}` belongs in the section [{section}]"
                    ),
                    Some(KeyHint::Typo(near)) => {
                        write!(f, "{at}: unknown {what}; did you mean [{near}]?")
                    }
                    None => write!(
                        f,
                        "{at}: unknown {what} (expected one of the sections {})",
                        expected_names(None).join(", ")
                    ),
                }
            }
            ConfigError::WrongType {
                at,
                key,
                expected,
                found,
            } => write!(
                f,
                "{at}: wrong type for {key}: expected {expected}, found {found}"
            ),
            ConfigError::InvalidValue { at, key, message } => {
                write!(f, "{at}: invalid value for {key}: {message}")
            }
            ConfigError::Many(list) => {
                write!(f, "{} errors:", list.len())?;
                for e in list {
                    write!(f, "\n{e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn location(origin: &str, text: &str, span: Option<Range<usize>>) -> Location {
    Location {
        origin: origin.to_owned(),
        line: span.map(|s| line_column(text, s.start).0),
    }
}

pub(super) fn syntax(e: &toml::de::Error, text: &str, origin: &str) -> ConfigError {
    let (line, column) = match e.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            (Some(line), Some(column))
        }
        None => (None, None),
    };
    ConfigError::Syntax {
        at: Location {
            origin: origin.to_owned(),
            line,
        },
        column,
        message: e.message().trim().to_owned(),
    }
}

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// What the error's offset falls on.
#[derive(Debug, PartialEq)]
enum Hit {
    /// A key; `is_table` tells whether its value is a table.
    Key {
        is_table: bool,
    },
    Value,
}

fn contains(span: &Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

/// Finds the key or value at `offset`, recording the path to it.
fn find(table: &DeTable<'_>, offset: usize, path: &mut Vec<Segment>) -> Option<Hit> {
    for (key, value) in table.iter() {
        path.push(Segment::Key(key.get_ref().to_string()));
        if contains(&key.span(), offset) {
            let is_table = matches!(value.get_ref(), DeValue::Table(_));
            return Some(Hit::Key { is_table });
        }
        if let Some(hit) = find_in_value(value.get_ref(), &value.span(), offset, path) {
            return Some(hit);
        }
        path.pop();
    }
    None
}

fn find_in_value(
    value: &DeValue<'_>,
    span: &Range<usize>,
    offset: usize,
    path: &mut Vec<Segment>,
) -> Option<Hit> {
    match value {
        // A section's own span does not cover the keys under it, so always look inside.
        DeValue::Table(table) => find(table, offset, path),
        DeValue::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(Segment::Index(index));
                if let Some(hit) = find_in_value(item.get_ref(), &item.span(), offset, path) {
                    return Some(hit);
                }
                path.pop();
            }
            contains(span, offset).then_some(Hit::Value)
        }
        _ => contains(span, offset).then_some(Hit::Value),
    }
}

/// `section.key` from a path, without array indexes.
fn dotted(path: &[Segment]) -> String {
    path.iter()
        .filter_map(|s| match s {
            Segment::Key(k) => Some(k.as_str()),
            Segment::Index(_) => None,
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The text between the first pair of backticks in a serde message.
fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// The known name nearest to a misspelt `name`, if it is close enough to be a typo.
fn nearest(name: &str, known: &[&'static str]) -> Option<&'static str> {
    /// Jaro-Winkler similarity from which a name counts as a typo of another.
    const TYPO_SIMILARITY: f64 = 0.85;
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), *k))
        .filter(|(score, _)| *score >= TYPO_SIMILARITY)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// What a duration key's unit is, from its name.
fn duration_unit(key: &str) -> Option<&'static str> {
    if key.ends_with("_secs") {
        Some("seconds")
    } else if key.ends_with("_ms") {
        Some("milliseconds")
    } else {
        None
    }
}

/// Rust type names in serde's "expected ..." text, in the words of a TOML file, for `key`.
fn toml_words(expected: &str, key: &str) -> String {
    let expected = expected.trim();
    let last = key.rsplit('.').next().unwrap_or(key);
    match expected {
        "u16" if last.ends_with("port") => "a port number from 1 to 65535".to_owned(),
        "u16" => format!("an integer from 0 to {}", u16::MAX),
        "u8" => format!("an integer from 0 to {}", u8::MAX),
        "u32" | "u64" | "usize" if duration_unit(last).is_some() => format!(
            "a duration in {} (a whole number, 0 or more)",
            duration_unit(last).unwrap_or_default()
        ),
        "u32" => format!("an integer from 0 to {}", u32::MAX),
        "u64" | "usize" => "a non-negative integer".to_owned(),
        "a boolean" => "true or false (without quotes)".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".to_owned(),
        "a sequence" => "an array".to_owned(),
        "path string" => "a string".to_owned(),
        e if e.starts_with("struct ") => "a table".to_owned(),
        e if e.starts_with("enum ") => "a string".to_owned(),
        e => e.to_owned(),
    }
}

pub(super) fn deserialize(
    e: &toml::de::Error,
    doc: &DeTable<'_>,
    text: &str,
    origin: &str,
) -> ConfigError {
    let message = e.message().trim();
    let mut path = Vec::new();
    let hit = e.span().and_then(|span| find(doc, span.start, &mut path));
    let at = location(origin, text, e.span());

    if message.starts_with("unknown field") {
        let (section, key, is_table) = match (hit, path.as_slice()) {
            (Some(Hit::Key { is_table }), [parents @ .., Segment::Key(key)]) => {
                let section = (!parents.is_empty()).then(|| dotted(parents));
                (section, key.clone(), is_table)
            }
            // Not located: fall back on serde's text, which lacks the section.
            _ => (None, backticked(message).unwrap_or("?").to_owned(), false),
        };
        let elsewhere = KEYS
            .iter()
            .find(|k| k.key == key && Some(k.section) != section.as_deref())
            .map(|k| KeyHint::Elsewhere(k.section));
        let hint = elsewhere
            .or_else(|| nearest(&key, &expected_names(section.as_deref())).map(KeyHint::Typo));
        return ConfigError::UnknownKey {
            at,
            section,
            key,
            is_table,
            hint,
        };
    }

    let key = if path.is_empty() {
        "the configuration".to_owned()
    } else {
        dotted(&path)
    };
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((found, expected)) = rest.rsplit_once(", expected ")
    {
        return ConfigError::WrongType {
            at,
            expected: toml_words(expected, &key),
            key,
            found: found.to_owned(),
        };
    }
    if let Some(rest) = message.strip_prefix("invalid value: ")
        && let Some((found, expected)) = rest.rsplit_once(", expected ")
    {
        let message = format!("expected {}, found {found}", toml_words(expected, &key));
        return ConfigError::InvalidValue { at, key, message };
    }
    let message = match message.strip_prefix("unknown variant ") {
        Some(rest) => match rest.split_once(", expected ") {
            Some((value, expected)) => format!(
                "{} is not accepted, expected {}",
                value.replace('`', "\""),
                expected.replace('`', "\"")
            ),
            None => message.to_owned(),
        },
        None => message.to_owned(),
    };
    ConfigError::InvalidValue { at, key, message }
}

/// The span of the key at `path` (dotted segments), if the document has it.
pub(super) fn lookup(doc: &DeTable<'_>, path: &[&str]) -> Option<Range<usize>> {
    let (first, rest) = path.split_first()?;
    let (key, value) = doc.iter().find(|(k, _)| k.get_ref() == first)?;
    if rest.is_empty() {
        return Some(key.span());
    }
    match value.get_ref() {
        DeValue::Table(table) => lookup(table, rest),
        _ => None,
    }
}

pub(super) fn invalid(
    invalid: Invalid,
    doc: &DeTable<'_>,
    text: &str,
    origin: &str,
) -> ConfigError {
    let span = invalid.keys.iter().find_map(|key| {
        let segments: Vec<&str> = key.split('.').collect();
        let key_span = lookup(doc, &segments)?;
        // Point at the offending element of a multi-line array rather than at its key.
        let element = invalid
            .index
            .and_then(|index| element_span(doc, &segments, index));
        Some(element.unwrap_or(key_span))
    });
    ConfigError::InvalidValue {
        at: location(origin, text, span),
        key: invalid.keys.first().cloned().unwrap_or_default(),
        message: invalid.message,
    }
}

fn element_span(doc: &DeTable<'_>, path: &[&str], index: usize) -> Option<Range<usize>> {
    let (first, rest) = path.split_first()?;
    let (_, value) = doc.iter().find(|(k, _)| k.get_ref() == first)?;
    match (value.get_ref(), rest.is_empty()) {
        (DeValue::Array(items), true) => items.get(index).map(|item| item.span()),
        (DeValue::Table(table), false) => element_span(table, rest, index),
        _ => None,
    }
}
