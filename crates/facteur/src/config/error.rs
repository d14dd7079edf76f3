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
        expected: Vec<&'static str>,
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
}

impl ConfigError {
    /// The 1-based line the error is on, when it is about the file's content and could be located.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::NotFound { .. } | ConfigError::Read { .. } => None,
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
                expected,
                ..
            } => write!(
                f,
                "{at}: unknown key '{key}' in [{section}] (expected one of {})",
                expected.join(", ")
            ),
            ConfigError::UnknownKey {
                at,
                section: None,
                key,
                is_table,
                expected,
            } => {
                let what = if *is_table {
                    format!("section [{key}]")
                } else {
                    format!("top-level key '{key}'")
                };
                write!(
                    f,
                    "{at}: unknown {what} (expected one of the sections {})",
                    expected.join(", ")
                )
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

/// Rust type names in serde's "expected ..." text, in the words of a TOML file.
fn toml_words(expected: &str) -> String {
    let expected = expected.trim();
    match expected {
        "u32" => format!("an integer from 0 to {}", u32::MAX),
        "u64" | "usize" => "a non-negative integer".to_owned(),
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
        let expected = match &section {
            Some(section) => KEYS
                .iter()
                .filter(|k| k.section == section.as_str())
                .map(|k| k.key)
                .collect(),
            None => SECTIONS.iter().map(|s| s.name).collect(),
        };
        return ConfigError::UnknownKey {
            at,
            section,
            key,
            is_table,
            expected,
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
            key,
            expected: toml_words(expected),
            found: found.to_owned(),
        };
    }
    if let Some(rest) = message.strip_prefix("invalid value: ")
        && let Some((found, expected)) = rest.rsplit_once(", expected ")
    {
        let message = format!("expected {}, found {found}", toml_words(expected));
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
