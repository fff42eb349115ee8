//! Where the binaries' logs go: stderr, except that a stderr nobody reads
//! (a closed pipe) swallows the lines instead of failing. tracing's own
//! writer reports a failed write with `eprintln!`, which panics on the same
//! closed pipe, so a log line would turn any exit code into a panic's 101.

use std::io::{self, Write};

/// A `tracing_subscriber` writer: `.with_writer(cm_model::log_writer::stderr)`.
pub fn stderr() -> QuietStderr {
    QuietStderr
}

/// Standard error, with write errors ignored.
pub struct QuietStderr;

impl Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// `eprintln!` that never panics: with stderr closed there is nobody to
/// tell, and the exit code still says how the command ended.
#[macro_export]
macro_rules! tell {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
