//! Diagnostics: a problem in a rule or config file, with where it is and what was expected.

use std::fmt;
use std::sync::Arc;

/// A place in a source file (1-based line and column; 0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Location {
    pub file: Arc<str>,
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub fn new(file: Arc<str>, line: usize, column: usize) -> Self {
        Location { file, line, column }
    }

    /// The location `offset` characters further along the same line.
    pub fn shifted(&self, lines: usize, column: usize) -> Location {
        if lines == 0 {
            Location { column: self.column + column, ..self.clone() }
        } else {
            Location { line: self.line + lines, column: column.max(1), ..self.clone() }
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One problem found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Location,
    pub message: String,
}

impl Diagnostic {
    pub fn new(location: Location, message: impl Into<String>) -> Self {
        Diagnostic { location, message: message.into() }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: error: {}", self.location, self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// The `(line, column)` a SQL parser message ends with (`… at Line: 3, Column: 14`, as
/// sqlparser writes it), 1-based; `None` when it names none.
pub fn sql_parser_position(message: &str) -> Option<(u64, u64)> {
    let rest = &message[message.rfind("Line: ")? + 6..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((line.trim().parse().ok()?, column.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_parser_positions_are_read_off_the_message() {
        assert_eq!(sql_parser_position("Expected: ), found: EOF at Line: 3, Column: 14"), Some((3, 14)));
        assert_eq!(sql_parser_position("sql parser error: no place named"), None);
        assert_eq!(sql_parser_position("at Line: x, Column: 2"), None);
    }
}
