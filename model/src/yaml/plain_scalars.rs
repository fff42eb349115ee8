//! Plain (unquoted) scalars whose meaning depends on who reads them.
//!
//! YAML 1.1 and the parser cm uses read `yes`, `no`, `on`, `off`, `y` and
//! `n` as booleans, `0644` as the float 644.0, `0x1F` as 31 and `1_000` as
//! 1000, where YAML 1.2 (and most people) read text or another number;
//! `1.10` comes back as `1.1` (a version number lost) and `1e3`, text to
//! YAML 1.1, as `1000.0`. cm refuses these forms in what people write,
//! with the quoted form to write instead, so that no value changes type or
//! number behind its author's back. Mapping keys are not checked: cm reads
//! every key as text.

/// What is ambiguous about a plain scalar, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ambiguity {
    /// A YAML 1.1 boolean spelling (`yes`, `off`, `Y`, ...): read as `value`.
    Boolean { text: String, value: bool },
    /// Digits with a leading zero (`0644`, `007`): read as a float.
    LeadingZero { text: String, number: String },
    /// A radix prefix or digit separators (`0x1F`, `0o17`, `0b101`,
    /// `1_000`): read as the integer `number`.
    Spelling { text: String, number: String },
    /// An integer too large for 64 bits: read as an inexact float.
    TooLarge { text: String },
    /// A decimal that does not come back as written (`1.10`, `.5`, `01.5`,
    /// digits past a float's precision) or that YAML 1.1 reads as text
    /// (`1e3`): read as the number `number`.
    Float { text: String, number: String },
}

impl Ambiguity {
    /// The author's fix, in words.
    pub(crate) fn advice(&self) -> String {
        match self {
            Ambiguity::Boolean { text, value } => format!(
                "{text} is read as the boolean {value}: write true/false, or \"{text}\" quoted for the string"
            ),
            Ambiguity::LeadingZero { text, number } | Ambiguity::Spelling { text, number } => {
                format!("write \"{text}\" (quoted) for the string, or {number} for the number")
            }
            Ambiguity::TooLarge { text } => format!(
                "{text} is too large for an integer (at most 64 bits): write \"{text}\" (quoted) for the string"
            ),
            Ambiguity::Float { text, number } => format!(
                "{text} is read as the number {number}: write \"{text}\" (quoted) for the string, or {number} for the number"
            ),
        }
    }
}

/// Spellings YAML 1.2 reads as booleans too: these are fine.
const PLAIN_BOOLEANS: &[&str] = &["true", "True", "TRUE", "false", "False", "FALSE"];

/// Classify the text of a plain scalar; `None` when every reader agrees on it.
pub(crate) fn ambiguity(text: &str) -> Option<Ambiguity> {
    let t = text.trim();
    if let Some(value) = yaml11_boolean(t) {
        return (!PLAIN_BOOLEANS.contains(&t)).then(|| Ambiguity::Boolean {
            text: t.to_string(),
            value,
        });
    }
    let (sign, unsigned) = match t.strip_prefix(['+', '-']) {
        Some(rest) => (&t[..1], rest),
        None => ("", t),
    };
    let sign = if sign == "-" { "-" } else { "" };
    if unsigned.len() > 1
        && unsigned.starts_with('0')
        && unsigned.bytes().all(|b| b.is_ascii_digit())
    {
        let digits = unsigned.trim_start_matches('0');
        let digits = if digits.is_empty() { "0" } else { digits };
        let number = if digits == "0" {
            "0".to_string()
        } else {
            format!("{sign}{digits}")
        };
        return Some(Ambiguity::LeadingZero {
            text: t.to_string(),
            number,
        });
    }
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(digits) = unsigned.strip_prefix(prefix)
            && let Some(n) = digits_value(digits, radix)
        {
            return Some(Ambiguity::Spelling {
                text: t.to_string(),
                number: format!("{sign}{n}"),
            });
        }
    }
    if unsigned.contains('_')
        && let Some(n) = digits_value(unsigned, 10)
    {
        return Some(Ambiguity::Spelling {
            text: t.to_string(),
            number: format!("{sign}{n}"),
        });
    }
    if !unsigned.is_empty()
        && unsigned.bytes().all(|b| b.is_ascii_digit())
        && t.parse::<i64>().is_err()
        && t.parse::<u64>().is_err()
    {
        return Some(Ambiguity::TooLarge {
            text: t.to_string(),
        });
    }
    float_ambiguity(t, unsigned)
}

/// A plain decimal with a point or an exponent (YAML 1.2's float form) is
/// fine only when it is written as it reads back: `1.5`, `0.25`, `100.0`.
fn float_ambiguity(t: &str, unsigned: &str) -> Option<Ambiguity> {
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let is_float = (fraction.is_some() || exponent.is_some())
        && digits(whole)
        && fraction.is_none_or(digits)
        && !(whole.is_empty() && fraction.is_none_or(str::is_empty))
        && exponent.is_none_or(|e| {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && digits(e)
        });
    if !is_float {
        return None;
    }
    let value: f64 = t.parse().ok()?;
    let number = serde_json::Value::from(value).to_string();
    let written = t.strip_prefix('+').unwrap_or(t);
    (exponent.is_some() || number != written).then(|| Ambiguity::Float {
        text: t.to_string(),
        number,
    })
}

/// The booleans of YAML 1.1, in any case, as the parser reads them.
fn yaml11_boolean(t: &str) -> Option<bool> {
    const TRUE: &[&str] = &["true", "yes", "y", "on"];
    const FALSE: &[&str] = &["false", "no", "n", "off"];
    if TRUE.iter().any(|w| t.eq_ignore_ascii_case(w)) {
        Some(true)
    } else if FALSE.iter().any(|w| t.eq_ignore_ascii_case(w)) {
        Some(false)
    } else {
        None
    }
}

/// The value of `digits` in `radix`, with `_` allowed between digits as the
/// parser allows it; `None` when it is not such a number.
fn digits_value(digits: &str, radix: u32) -> Option<u128> {
    let bytes = digits.as_bytes();
    let mut value: u128 = 0;
    let mut seen = false;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'_' {
            let between = i > 0 && i + 1 < bytes.len() && bytes[i + 1] != b'_';
            if !between || bytes[i - 1] == b'_' {
                return None;
            }
            continue;
        }
        let d = char::from(b).to_digit(radix)?;
        value = value
            .checked_mul(u128::from(radix))?
            .checked_add(u128::from(d))?;
        seen = true;
    }
    seen.then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml11_booleans_are_ambiguous_and_yaml12_ones_are_not() {
        for word in [
            "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off",
            "Off", "OFF", "tRuE",
        ] {
            assert!(
                matches!(ambiguity(word), Some(Ambiguity::Boolean { .. })),
                "{word}"
            );
        }
        for word in PLAIN_BOOLEANS {
            assert_eq!(ambiguity(word), None, "{word}");
        }
        assert_eq!(
            ambiguity("off").unwrap().advice(),
            "off is read as the boolean false: write true/false, or \"off\" quoted for the string"
        );
    }

    #[test]
    fn numbers_spelled_two_ways_name_both() {
        for (text, advice) in [
            (
                "0644",
                "write \"0644\" (quoted) for the string, or 644 for the number",
            ),
            (
                "007",
                "write \"007\" (quoted) for the string, or 7 for the number",
            ),
            (
                "-007",
                "write \"-007\" (quoted) for the string, or -7 for the number",
            ),
            (
                "00",
                "write \"00\" (quoted) for the string, or 0 for the number",
            ),
            (
                "0x1F",
                "write \"0x1F\" (quoted) for the string, or 31 for the number",
            ),
            (
                "0o17",
                "write \"0o17\" (quoted) for the string, or 15 for the number",
            ),
            (
                "0b101",
                "write \"0b101\" (quoted) for the string, or 5 for the number",
            ),
            (
                "1_000",
                "write \"1_000\" (quoted) for the string, or 1000 for the number",
            ),
        ] {
            assert_eq!(ambiguity(text).map(|a| a.advice()).as_deref(), Some(advice));
        }
        assert!(matches!(
            ambiguity("99999999999999999999"),
            Some(Ambiguity::TooLarge { .. })
        ));
    }

    #[test]
    fn decimals_that_do_not_read_back_as_written_are_ambiguous() {
        for (text, number) in [
            ("1.10", "1.1"),
            ("8.10", "8.1"),
            (".5", "0.5"),
            ("01.5", "1.5"),
            ("1.", "1.0"),
            ("1e3", "1000.0"),
            ("1.5e3", "1500.0"),
            ("0.12345678901234567890", "0.12345678901234568"),
        ] {
            match ambiguity(text) {
                Some(Ambiguity::Float { number: n, .. }) => assert_eq!(n, number, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert_eq!(
            ambiguity("8.10").unwrap().advice(),
            "8.10 is read as the number 8.1: write \"8.10\" (quoted) for the string, or 8.1 for the number"
        );
    }

    #[test]
    fn plain_numbers_and_words_are_not_ambiguous() {
        for text in [
            "0",
            "-0",
            "0.5",
            "644",
            "-12",
            "+3",
            "1.5",
            "-2.25",
            "100.0",
            "18446744073709551615",
            "-9223372036854775808",
            "yesterday",
            "none",
            "1:30",
            "0x",
            "0xZZ",
            "_1",
            "1__0",
            "10.0.0.1",
            "1.2.3",
            "",
        ] {
            assert_eq!(ambiguity(text), None, "{text}");
        }
    }
}
