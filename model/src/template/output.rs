//! Rendered output with a ceiling: a loop over a large list can ask for
//! gigabytes, and an allocation that fails aborts the process. Rendering
//! writes through [`LimitedWriter`], which refuses the write that would pass
//! [`MAX_OUTPUT_BYTES`], so the render stops with an error naming the
//! template instead.

use std::io;

/// Most bytes one rendering (a template file or one property) may produce.
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;

/// A byte buffer that refuses to grow past its limit.
pub(super) struct LimitedWriter {
    buf: Vec<u8>,
    limit: usize,
    /// Set when a write was refused: the render failed because of the limit.
    pub exceeded: bool,
}

impl LimitedWriter {
    pub fn new(limit: usize) -> LimitedWriter {
        LimitedWriter {
            buf: Vec::new(),
            limit,
            exceeded: false,
        }
    }

    /// What was written. handlebars writes whole `&str` segments, so the
    /// bytes are UTF-8; a lossy conversion keeps this free of panics anyway.
    pub fn into_string(self) -> String {
        String::from_utf8(self.buf)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

impl io::Write for LimitedWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(bytes.len()) > self.limit {
            self.exceeded = true;
            return Err(io::Error::other(format!(
                "output larger than {} bytes",
                self.limit
            )));
        }
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn refuses_the_write_that_passes_the_limit() {
        let mut w = LimitedWriter::new(4);
        w.write_all(b"abc").unwrap();
        assert!(w.write_all(b"de").is_err());
        assert!(w.exceeded);
        assert_eq!(w.into_string(), "abc");
    }
}
