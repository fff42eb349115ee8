//! A tiny HTTP/1.1 server on loopback for `remote_file`: real sockets and
//! real HTTP, answering every request with one body and counting requests.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct HttpServer {
    /// `http://127.0.0.1:PORT/file`: any path gets the same answer.
    pub url: String,
    requests: Arc<AtomicUsize>,
}

impl HttpServer {
    /// Answers `200 OK` with `body`.
    pub fn serving(body: &[u8]) -> HttpServer {
        HttpServer::declaring(body.len() as u64, body)
    }

    /// Answers with a `Content-Length` of `length`, then `body` and a close,
    /// whether they agree or not.
    pub fn declaring(length: u64, body: &[u8]) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/file", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        let body = body.to_vec();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                // The request line and headers, up to the blank line.
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                count.fetch_add(1, Ordering::SeqCst);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        HttpServer { url, requests }
    }

    /// How many requests it has answered.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}
