//! How deeply a template's text nests, measured before handlebars sees it.
//!
//! handlebars parses, renders and drops templates recursively: a template
//! nested a few thousand blocks deep overflows the stack of whatever thread
//! handles it (the agent's, the server's). This scan reads the text the way
//! handlebars' grammar does, only far enough to count nesting: blocks
//! (`{{#…}}`, raw `{{{{…}}}}`), each link of an `{{else if …}}` chain,
//! sub-expressions `( … )` and literal lists and maps inside a tag. It refuses
//! what it cannot read for sure (a `{{` inside a string in a tag) rather than
//! guess, so nesting cannot hide from it.

/// Deepest nesting a template may have: blocks, `else` chain links,
/// sub-expressions and literal lists or maps, counted together (and across
/// partials, see [`super::Templates::add_cookbook`]).
pub const MAX_DEPTH: usize = 64;

/// Where and why a text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DepthError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The scan's state: nesting of the blocks open so far.
struct Scan<'a> {
    text: &'a [u8],
    /// Each open block's weight: 1, plus one per `else if` link.
    frames: Vec<usize>,
    depth: usize,
}

/// Check that `text` nests at most `limit` deep.
pub(super) fn check(text: &str, limit: usize) -> Result<(), DepthError> {
    let mut scan = Scan {
        text: text.as_bytes(),
        frames: Vec::new(),
        depth: 0,
    };
    scan.run(limit)
}

impl Scan<'_> {
    fn error(&self, at: usize, message: String) -> DepthError {
        let before = &self.text[..at.min(self.text.len())];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        DepthError {
            line,
            column: at - line_start + 1,
            message,
        }
    }

    fn too_deep(&self, at: usize, depth: usize, limit: usize) -> Result<(), DepthError> {
        if depth > limit {
            return Err(self.error(
                at,
                format!(
                    "blocks, else-if chains and sub-expressions nest {depth} deep here; at most {limit} are allowed"
                ),
            ));
        }
        Ok(())
    }

    fn run(&mut self, limit: usize) -> Result<(), DepthError> {
        let mut i = 0;
        while let Some(at) = find(self.text, i, b"{{") {
            if escaped(self.text, at) {
                // `\{{` (and `\{{{{`) is literal text.
                i = at + 2;
                if self.text[i..].starts_with(b"{{") {
                    i += 2;
                }
                continue;
            }
            if self.text[at..].starts_with(b"{{{{") {
                i = self.raw_block(at, limit)?;
                continue;
            }
            let body = skip_space_and_tilde(self.text, at + 2);
            if self.text.get(body) == Some(&b'!') {
                i = self.comment(at, body);
                continue;
            }
            let Some((end, inner)) = self.tag(at, body, b"}}")? else {
                // Unterminated: handlebars refuses it as a syntax error.
                return Ok(());
            };
            self.too_deep(at, self.depth + inner, limit)?;
            match self.text[body] {
                b'#' => self.open(at, limit)?,
                b'/' => self.close(),
                b'^' => self.invert(at, body + 1, end, limit)?,
                _ if self.text[body..].starts_with(b"else") => {
                    self.invert(at, body + 4, end, limit)?
                }
                _ => {}
            }
            i = end + 2;
        }
        Ok(())
    }

    fn open(&mut self, at: usize, limit: usize) -> Result<(), DepthError> {
        self.frames.push(1);
        self.depth += 1;
        self.too_deep(at, self.depth, limit)
    }

    fn close(&mut self) {
        if let Some(weight) = self.frames.pop() {
            self.depth -= weight;
        }
    }

    /// `{{else}}` or `{{^}}` alone switches branches; followed by a helper
    /// (`{{else if x}}`) it nests one level deeper until the block closes.
    fn invert(
        &mut self,
        at: usize,
        rest: usize,
        end: usize,
        limit: usize,
    ) -> Result<(), DepthError> {
        let chained = self.text[rest..end]
            .iter()
            .any(|b| !b.is_ascii_whitespace() && *b != b'~');
        if chained && let Some(top) = self.frames.last_mut() {
            *top += 1;
            self.depth += 1;
            return self.too_deep(at, self.depth, limit);
        }
        Ok(())
    }

    /// `{{!-- … --}}` or `{{! … }}`: returns where scanning resumes.
    fn comment(&self, at: usize, bang: usize) -> usize {
        if self.text[bang + 1..].starts_with(b"--")
            && let Some(end) = find(self.text, bang + 3, b"--}}")
        {
            return end + 4;
        }
        find(self.text, at + 2, b"}}").map_or(self.text.len(), |end| end + 2)
    }

    /// `{{{{helper}}}}raw text{{{{/helper}}}}`: returns where scanning resumes.
    fn raw_block(&mut self, at: usize, limit: usize) -> Result<usize, DepthError> {
        let body = skip_space_and_tilde(self.text, at + 4);
        let Some((end, inner)) = self.tag(at, body, b"}}}}")? else {
            return Ok(self.text.len());
        };
        if self.text.get(body) == Some(&b'/') {
            self.close();
            return Ok(end + 4);
        }
        self.too_deep(at, self.depth + inner, limit)?;
        self.open(at, limit)?;
        // The content is text up to the next unescaped `{{{{` (the end tag).
        let mut i = end + 4;
        while let Some(next) = find(self.text, i, b"{{{{") {
            if !escaped(self.text, next) {
                return Ok(next);
            }
            i = next + 4;
        }
        Ok(self.text.len())
    }

    /// The inside of a tag from `body` to its terminator: returns the
    /// terminator's position and the deepest nesting of parentheses, lists
    /// and maps inside, or `None` when the tag never ends.
    fn tag(
        &self,
        at: usize,
        body: usize,
        terminator: &[u8],
    ) -> Result<Option<(usize, usize)>, DepthError> {
        let t = self.text;
        let (mut nest, mut deepest) = (0usize, 0usize);
        // `{{{x}}}` (no escaping) is not a literal map.
        let mut i = if t.get(body) == Some(&b'{') {
            body + 1
        } else {
            body
        };
        while i < t.len() {
            match t[i] {
                q @ (b'"' | b'\'') => {
                    // An unterminated string runs to the end of the text.
                    let close = string_end(t, i + 1, q).unwrap_or(t.len());
                    if find(&t[..close], i + 1, b"{{").is_some() {
                        return Err(self.error(
                            i,
                            "a string inside {{…}} holds \"{{\"; cm does not accept that"
                                .to_string(),
                        ));
                    }
                    if close == t.len() {
                        return Ok(None);
                    }
                    i = close + 1;
                    continue;
                }
                b'(' | b'[' => {
                    nest += 1;
                    deepest = deepest.max(nest);
                }
                b')' | b']' => nest = nest.saturating_sub(1),
                b'{' if t[i..].starts_with(b"{{") => {
                    return Err(self.error(
                        at,
                        "a tag opens inside another tag (missing \"}}\"?)".to_string(),
                    ));
                }
                b'{' => {
                    nest += 1;
                    deepest = deepest.max(nest);
                }
                b'}' if nest > 0 => nest -= 1,
                b'}' if t[i..].starts_with(terminator) => return Ok(Some((i, deepest))),
                _ => {}
            }
            i += 1;
        }
        Ok(None)
    }
}

/// The position of the closing quote of a string whose content starts at `from`.
fn string_end(t: &[u8], from: usize, quote: u8) -> Option<usize> {
    let mut i = from;
    while i < t.len() {
        match t[i] {
            b'\\' => i += 2,
            c if c == quote => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// handlebars reads exactly one backslash before `{{` as an escape; two or
/// more are literal backslashes before a real tag.
fn escaped(t: &[u8], at: usize) -> bool {
    let backslashes = t[..at].iter().rev().take_while(|b| **b == b'\\').count();
    backslashes == 1
}

fn skip_space_and_tilde(t: &[u8], mut i: usize) -> usize {
    while i < t.len() && t[i].is_ascii_whitespace() {
        i += 1;
    }
    if t.get(i) == Some(&b'~') {
        i += 1;
    }
    while i < t.len() && t[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(text: &str, limit: usize) -> bool {
        check(text, limit).is_ok()
    }

    fn nested_ifs(n: usize) -> String {
        format!("{}x{}", "{{#if a}}".repeat(n), "{{/if}}".repeat(n))
    }

    #[test]
    fn blocks_count_as_nesting() {
        assert!(depth_ok(&nested_ifs(3), 3));
        let err = check(&nested_ifs(4), 3).unwrap_err();
        assert_eq!((err.line, err.column), (1, 28), "{err:?}");
        assert!(err.message.contains("4 deep"), "{err:?}");
        // Siblings do not nest.
        assert!(depth_ok(&"{{#if a}}x{{/if}}".repeat(100), 1));
    }

    #[test]
    fn else_if_chains_and_sub_expressions_count() {
        let chain = format!("{{{{#if a}}}}{}{{{{/if}}}}", "{{else if b}}".repeat(5));
        assert!(depth_ok(&chain, 6));
        assert!(!depth_ok(&chain, 5));
        assert!(depth_ok("{{#if a}}x{{else}}y{{/if}}", 1));
        assert!(depth_ok("{{#if a}}x{{^}}y{{/if}}", 1));
        let parens = format!("{{{{x {}a{}}}}}", "(f ".repeat(10), ")".repeat(10));
        assert!(depth_ok(&parens, 10));
        assert!(!depth_ok(&parens, 9));
        let lists = format!("{{{{x {}1{}}}}}", "[".repeat(10), "]".repeat(10));
        assert!(!depth_ok(&lists, 9));
    }

    #[test]
    fn comments_escapes_strings_and_raw_blocks_hide_nothing_and_add_nothing() {
        let hidden = nested_ifs(5);
        assert!(depth_ok(&format!("{{{{!-- {hidden} --}}}}"), 0));
        assert!(depth_ok(&format!("{{{{! {} }}}}", "{{#if a".repeat(5)), 0));
        assert!(depth_ok(r"\{{#if a}}\{{#if b}}", 0));
        assert!(depth_ok("{{x \"((((\"}}{{y '[[[['}}", 0));
        assert!(depth_ok("{{{{raw}}}}{{#if a}}{{#if b}}{{{{/raw}}}}", 1));
        // Two backslashes are a literal backslash before a real tag.
        assert!(!depth_ok(r"\\{{#if a}}\\{{#if b}}", 1));
    }

    #[test]
    fn a_string_cannot_swallow_tags() {
        let err = check(&format!("{{{{x \"{}\"}}}}", nested_ifs(3)), 64).unwrap_err();
        assert!(err.message.contains("string"), "{err:?}");
        // A quote in a path key hides nothing either: the "string" it seems
        // to open would hold tags.
        let sneaky = format!("{{{{attrs.[\"]}}}}{}\"", nested_ifs(100));
        assert!(check(&sneaky, 64).is_err());
        let unterminated = format!("{{{{attrs.[\"]}}}}{}", nested_ifs(100));
        assert!(check(&unterminated, 64).is_err());
        assert!(depth_ok("{{{attrs.x}}}", 0));
    }

    #[test]
    fn lines_and_columns_point_at_the_tag() {
        let text = "a\n{{#if x}}\n  {{#if y}}\n{{/if}}{{/if}}";
        let err = check(text, 1).unwrap_err();
        assert_eq!((err.line, err.column), (3, 3), "{err:?}");
    }
}
