//! The one error type of this crate: every error names the file and, where the problem is in
//! the text, the line and column (1-based; the column counts characters, not bytes).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// What kind of configuration problem; small and matchable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigErrorKind {
    /// The file could not be read.
    Io,
    /// The file is larger than [`crate::CONFIG_FILE_MAX_BYTES`] or not UTF-8.
    Unreadable,
    /// TOML syntax, an unknown key, a missing key or a value of the wrong type.
    Syntax,
    /// A well-typed value that is impossible (zero queues, duplicate names, bad address, …).
    Invalid,
}

/// A line and column in the configuration text, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl Location {
    /// The location of byte offset `offset_bytes` in `text` (clamped to the text's end and
    /// moved back to a character boundary).
    pub fn of_offset(text: &str, offset_bytes: usize) -> Self {
        let mut end = offset_bytes.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let before = &text[..end];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Self {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A configuration error: `FILE:LINE:COL: message` (or `FILE: message` when it is not about
/// a place in the text, e.g. the file is missing).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ConfigError {
    /// What kind of problem.
    pub kind: ConfigErrorKind,
    /// The file (as given by the caller).
    pub file: PathBuf,
    /// Where in the file, when known.
    pub location: Option<Location>,
    /// What is wrong, for people.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(loc) => write!(f, "{}:{}: {}", self.file.display(), loc, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl ConfigError {
    /// An error without a place in the text.
    pub(crate) fn whole_file(file: &Path, kind: ConfigErrorKind, message: String) -> Self {
        Self {
            kind,
            file: file.to_path_buf(),
            location: None,
            message,
        }
    }

    /// An error at the start of `span` in `text`.
    pub(crate) fn at(
        file: &Path,
        text: &str,
        span: Range<usize>,
        kind: ConfigErrorKind,
        message: String,
    ) -> Self {
        Self {
            kind,
            file: file.to_path_buf(),
            location: Some(Location::of_offset(text, span.start)),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_one_based_lines_and_character_columns() {
        let text = "ab\nçd = 1\n\nx";
        assert_eq!(
            Location::of_offset(text, 0),
            Location { line: 1, column: 1 }
        );
        assert_eq!(
            Location::of_offset(text, 2),
            Location { line: 1, column: 3 }
        );
        assert_eq!(
            Location::of_offset(text, 3),
            Location { line: 2, column: 1 }
        );
        // 'ç' is two bytes: byte 5 is the 'd', the second character of line 2.
        assert_eq!(
            Location::of_offset(text, 5),
            Location { line: 2, column: 2 }
        );
        // Inside a multi-byte character: moved back to its start.
        assert_eq!(
            Location::of_offset(text, 4),
            Location { line: 2, column: 1 }
        );
        assert_eq!(
            Location::of_offset(text, 999),
            Location { line: 4, column: 2 }
        );
    }
}
