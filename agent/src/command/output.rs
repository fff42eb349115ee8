//! A command's stdout and stderr, each read on its own thread so a chatty
//! child never blocks on a full pipe, and capped so a runaway one cannot
//! fill the agent's memory.

use std::io::Read;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Instant;

/// Keep at most 1 MiB of output: enough for any error message.
const MAX_OUTPUT: usize = 1 << 20;

/// A pipe being read.
pub(super) struct Drain {
    buf: Arc<Mutex<Vec<u8>>>,
    /// Disconnected when the reader has seen the end of the pipe.
    ended: mpsc::Receiver<()>,
}

pub(super) fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> Drain {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let shared = Arc::clone(&buf);
    let (ending, ended) = mpsc::channel::<()>();
    thread::spawn(move || {
        let _ending = ending;
        let Some(mut p) = pipe else { return };
        let mut chunk = [0u8; 8192];
        loop {
            match p.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut b = shared.lock().unwrap_or_else(|e| e.into_inner());
                    let room = MAX_OUTPUT.saturating_sub(b.len());
                    b.extend_from_slice(&chunk[..n.min(room)]);
                }
            }
        }
    });
    Drain { buf, ended }
}

impl Drain {
    /// What was read, waiting for the end of the pipe until `until` at most;
    /// a reader still blocked then is left behind rather than hang the run.
    pub(super) fn finish(self, until: Instant) -> String {
        let _ = self
            .ended
            .recv_timeout(until.saturating_duration_since(Instant::now()));
        let b = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&b).into_owned()
    }
}
