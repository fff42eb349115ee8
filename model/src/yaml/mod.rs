//! YAML parsing with errors that carry the file, line and column.
//!
//! Every YAML document cm reads from people (metadata, attributes, recipes,
//! roles, environments) is plain data: a tag (`!!python/object`, `!custom`,
//! `!!binary`, even `!!str`) is refused with its position, because the
//! parser would otherwise apply or drop it silently and the same text would
//! mean different things to different readers.
//!
//! For the same reason a plain scalar that YAML 1.1 and YAML 1.2 read
//! differently (`yes`, `0644`, `0x1F`: see [`plain_scalars`]) is refused
//! under [`Reading::Strict`], the reading of everything people write now.
//! [`Reading::AsBefore`] reads such scalars as cm did before it refused
//! them, for what was accepted then: cookbook versions pushed before (the
//! agent says so in its report), roles and environments already stored.

mod plain_scalars;

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{LoadError, Pos};

/// How a document's ambiguous plain scalars are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reading {
    /// Refused, with the quoted form to write: what people write now.
    #[default]
    Strict,
    /// Read as before cm refused them (`yes` is true, `0644` is 644.0): for
    /// documents accepted before, which must not change meaning or stop
    /// loading.
    AsBefore,
}

/// Parse `text` (the content of `file`) into `T`, refusing unknown keys where
/// `T` does, and ambiguous plain scalars.
pub fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, LoadError> {
    parse_with(file, text, Reading::Strict)
}

/// [`parse`] with the given reading of ambiguous plain scalars.
pub fn parse_with<T: DeserializeOwned>(
    file: &Path,
    text: &str,
    reading: Reading,
) -> Result<T, LoadError> {
    scan(file, text, reading)?;
    serde_saphyr::from_str(text).map_err(|e| {
        let pos = e.location().map(|l| Pos::of(&l)).unwrap_or_default();
        LoadError::new(file, pos, first_line(&e.without_snippet().to_string()))
    })
}

/// Where the scan is in the document: inside a sequence, or inside a
/// mapping about to read a key or a value.
enum Frame {
    Sequence,
    Mapping { next_is_key: bool },
}

/// Scan the document's events for a tag on any node and, when `reading` is
/// strict, for an ambiguous plain scalar in a value. Syntax errors are left
/// to the deserializer, whose messages are better.
fn scan(file: &Path, text: &str, reading: Reading) -> Result<(), LoadError> {
    use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};
    let mut stack: Vec<Frame> = Vec::new();
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else {
            return Ok(());
        };
        // A node standing in a mapping is its key or its value, in turn.
        let is_node = matches!(
            event,
            Event::Scalar(..)
                | Event::SequenceStart(..)
                | Event::MappingStart(..)
                | Event::Alias(_)
        );
        let is_key = match stack.last_mut() {
            Some(Frame::Mapping { next_is_key }) if is_node => {
                let was = *next_is_key;
                *next_is_key = !was;
                was
            }
            _ => false,
        };
        match &event {
            Event::SequenceStart(..) => stack.push(Frame::Sequence),
            Event::MappingStart(..) => stack.push(Frame::Mapping { next_is_key: true }),
            Event::SequenceEnd | Event::MappingEnd => {
                stack.pop();
            }
            Event::Scalar(value, ScalarStyle::Plain, _, None)
                if reading == Reading::Strict && !is_key =>
            {
                if let Some(a) = plain_scalars::ambiguity(value) {
                    let at = span.start;
                    return Err(LoadError::new(
                        file,
                        Pos::new(at.line() as u64, at.col() as u64 + 1),
                        a.advice(),
                    ));
                }
            }
            _ => {}
        }
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

/// Why `text`, written unquoted where a value goes, is read two ways, with
/// the forms to write instead; `None` when every reader agrees on it. For
/// values written outside a YAML document (`cmctl node set`'s VALUE).
pub fn ambiguous_plain_value(text: &str) -> Option<String> {
    plain_scalars::ambiguity(text).map(|a| a.advice())
}

/// Read and parse a YAML file (strictly).
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

    /// How the parser reads each ambiguous form when nothing refuses it:
    /// the reading versions pushed before keep, and why strict refuses them.
    #[test]
    fn ambiguous_forms_as_read_before() {
        use serde_json::json;
        for (text, before) in [
            ("yes", json!(true)),
            ("No", json!(false)),
            ("on", json!(true)),
            ("OFF", json!(false)),
            ("y", json!(true)),
            ("n", json!(false)),
            ("0644", json!(644.0)),
            ("007", json!(7.0)),
            ("-007", json!(-7.0)),
            ("0x1F", json!(31)),
            ("0o17", json!(15)),
            ("0b101", json!(5)),
            ("1_000", json!(1000)),
            ("99999999999999999999", json!(1e20)),
        ] {
            let doc = format!("v: {text}\n");
            let v: serde_json::Value =
                parse_with(Path::new("x.yaml"), &doc, Reading::AsBefore).unwrap();
            assert_eq!(v["v"], before, "{text}");
            let err = parse::<serde_json::Value>(Path::new("a/x.yaml"), &doc).unwrap_err();
            assert!(
                err.to_string().starts_with("a/x.yaml:1:4: "),
                "{text}: {err}"
            );
            assert!(err.message.contains(&format!("\"{text}\"")), "{err}");
        }
    }

    #[test]
    fn unambiguous_values_read_the_same_both_ways() {
        use serde_json::json;
        let doc = "a: true\nb: false\nc: 1024\nd: 1.5\ne: 0\nf: '0644'\ng: \"yes\"\nh: 0.5\ni: 1:30\nj: -3\nk: ~\nl: [1, 2]\n";
        let want = json!({"a": true, "b": false, "c": 1024, "d": 1.5, "e": 0, "f": "0644",
            "g": "yes", "h": 0.5, "i": "1:30", "j": -3, "k": null, "l": [1, 2]});
        for reading in [Reading::Strict, Reading::AsBefore] {
            let v: serde_json::Value = parse_with(Path::new("x.yaml"), doc, reading).unwrap();
            assert_eq!(v, want);
            // An integer stays an integer: 1024, not 1024.0.
            assert_eq!(v["c"].to_string(), "1024");
            assert!(v["c"].is_u64() && v["j"].is_i64());
        }
    }

    #[test]
    fn ambiguous_scalars_are_found_wherever_values_are() {
        for (doc, line, column) in [
            ("a:\n  b:\n    - x\n    - on\n", 4, 7),
            ("a: {b: [1, 0644]}\n", 1, 12),
            ("- name: x\n  enabled: yes\n", 2, 12),
            ("a: &v off\nb: *v\n", 1, 7),
        ] {
            let err = parse::<serde_json::Value>(Path::new("x.yaml"), doc).unwrap_err();
            assert_eq!(
                (err.pos.line, err.pos.column),
                (line, column),
                "{doc}: {err}"
            );
        }
        // Keys are always text, so they are not ambiguous.
        let v: serde_json::Value =
            parse(Path::new("x.yaml"), "on: 1\nyes: {no: 2}\n0644: 3\n").unwrap();
        assert_eq!(v["on"], 1);
        assert_eq!(v["yes"]["no"], 2);
        assert_eq!(v["0644"], 3);
    }
}
