//! Load errors that point at the file, line and column a cookbook author must fix.

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in a source file, 1-based; line 0 means "the whole file".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl Pos {
    pub const fn new(line: u64, column: u64) -> Self {
        Pos { line, column }
    }

    pub(crate) fn of(location: &serde_saphyr::Location) -> Self {
        Pos::new(location.line(), location.column())
    }
}

/// The first thing wrong with a cookbook, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    /// Path of the offending file as the user knows it (the cookbook dir joined with the file).
    pub file: PathBuf,
    pub pos: Pos,
    pub message: String,
}

impl LoadError {
    pub fn new(file: impl AsRef<Path>, pos: Pos, message: impl Into<String>) -> Self {
        LoadError {
            file: file.as_ref().to_path_buf(),
            pos,
            message: message.into(),
        }
    }

    /// An error about a file as a whole (no line to point at).
    pub fn in_file(file: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Self::new(file, Pos::default(), message)
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.pos.line > 0 {
            write!(f, ":{}:{}", self.pos.line, self.pos.column)?;
        }
        write!(f, ": {}", self.message)
    }
}
