//! YAML parsing with errors that carry the file, line and column.
//!
//! Every YAML document cm reads from people (metadata, attributes, recipes,
//! roles, environments) is plain data: a tag (`!!python/object`, `!custom`,
//! `!!binary`, even `!!str`) is refused with its position, because the
//! parser would otherwise apply or drop it silently and the same text would
//! mean different things to different readers.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{LoadError, Pos};

/// Parse `text` (the content of `file`) into `T`, refusing unknown keys where `T` does.
pub fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, LoadError> {
    refuse_tags(file, text)?;
    serde_saphyr::from_str(text).map_err(|e| {
        let pos = e.location().map(|l| Pos::of(&l)).unwrap_or_default();
        LoadError::new(file, pos, first_line(&e.without_snippet().to_string()))
    })
}

/// Scan the document's events for a tag on any node. Syntax errors are left
/// to the deserializer, whose messages are better.
fn refuse_tags(file: &Path, text: &str) -> Result<(), LoadError> {
    use serde_saphyr::granit_parser::{Event, Parser};
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else {
            return Ok(());
        };
        let tag = match &event {
            Event::Scalar(_, _, _, tag)
            | Event::SequenceStart(_, _, tag)
            | Event::MappingStart(_, _, tag) => tag,
            _ => continue,
        };
        if let Some(tag) = tag {
            let at = span.tag_start.unwrap_or(span.start);
            return Err(LoadError::new(
                file,
                Pos::new(at.line() as u64, at.col() as u64 + 1),
                format!(
                    "YAML tag {tag} is not allowed: write plain values (quote a string that starts with '!')"
                ),
            ));
        }
    }
    Ok(())
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
    fn tags_are_refused_with_their_position() {
        for (text, tag, line, column) in [
            ("name: !!python/object:os.system x\n", "python/object", 1, 7),
            ("name: a\nlist: !custom [1]\n", "!custom", 2, 7),
            ("name: !!binary aGVsbG8=\n", "binary", 1, 7),
            ("name: a\nmap: !!map {}\n", "map", 2, 6),
            ("name: !<tag:yaml.org,2002:str> x\n", "str", 1, 7),
        ] {
            let err = parse::<serde_json::Value>(Path::new("x.yaml"), text).unwrap_err();
            assert_eq!(
                (err.pos.line, err.pos.column),
                (line, column),
                "{text}: {err}"
            );
            assert!(
                err.message.contains(tag) && err.message.contains("not allowed"),
                "{err}"
            );
        }
        // A quoted '!' is plain text.
        let v: serde_json::Value = parse(Path::new("x.yaml"), "name: '!!not a tag'\n").unwrap();
        assert_eq!(v["name"], "!!not a tag");
    }

    #[test]
    fn duplicate_key_is_refused() {
        let err = parse::<Doc>(Path::new("x.yaml"), "name: a\nname: b\n").unwrap_err();
        assert!(err.to_string().contains("x.yaml:2"), "{err}");
        assert!(!err.message.contains("Options"), "{err}");
    }
}
