//! YAML parsing with errors that carry the file, line and column.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{LoadError, Pos};

/// Parse `text` (the content of `file`) into `T`, refusing unknown keys where `T` does.
pub fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, LoadError> {
    serde_saphyr::from_str(text).map_err(|e| {
        let pos = e.location().map(|l| Pos::of(&l)).unwrap_or_default();
        LoadError::new(file, pos, first_line(&e.without_snippet().to_string()))
    })
}

/// serde-saphyr's messages may carry a snippet and a location suffix; we print our own.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    let line = line.rfind(" at line ").map_or(line, |i| &line[..i]);
    // Advice meant for programs using the parser, not for cookbook authors.
    line.split(", set DuplicateKeyPolicy")
        .next()
        .unwrap_or(line)
        .to_string()
}

/// Read and parse a YAML file.
pub fn load<T: DeserializeOwned>(file: &Path) -> Result<T, LoadError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| LoadError::in_file(file, format!("cannot read: {e}")))?;
    parse(file, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        name: String,
    }

    #[test]
    fn unknown_key_is_reported_with_its_line() {
        let err = parse::<Doc>(Path::new("x.yaml"), "name: a\nnmae: b\n").unwrap_err();
        assert_eq!(err.pos.line, 2, "{err}");
        assert!(err.message.contains("nmae"), "{err}");
    }

    #[test]
    fn duplicate_key_is_refused() {
        let err = parse::<Doc>(Path::new("x.yaml"), "name: a\nname: b\n").unwrap_err();
        assert!(err.to_string().contains("x.yaml:2"), "{err}");
        assert!(!err.message.contains("Options"), "{err}");
    }
}
