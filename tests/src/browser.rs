//! A real headless browser for the dashboard's tests: Debian's chromium,
//! driven through chromedriver with the W3C WebDriver protocol (plain JSON
//! over HTTP on loopback; the few commands the tests need).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// Whether chromium and chromedriver are installed (scripts/test.sh
/// installs them).
pub fn installed() -> bool {
    ["chromedriver", "chromium"].iter().all(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// A chromedriver process and one browser session in it; both end on drop.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
}

impl Browser {
    /// Start chromedriver and a headless chromium. The dashboard's
    /// certificate comes from cm's CA, which this browser does not know:
    /// it accepts it (the TLS is real; the tests of the HTTPS client check
    /// the name and the chain).
    pub async fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"],
            },
        }}});
        let mut last = String::new();
        // Up to 30 s: a loaded CI machine starts chromedriver slowly.
        for _ in 0..300 {
            match http
                .post(format!("{base}/session"))
                .json(&capabilities)
                .send()
                .await
            {
                Ok(answer) => {
                    let body: Value = answer.json().await.expect("WebDriver JSON");
                    let id = body["value"]["sessionId"].as_str().map(str::to_string);
                    let Some(session) = id else {
                        panic!("no browser session: {body}");
                    };
                    return Browser {
                        driver,
                        http,
                        session: format!("{base}/session/{session}"),
                    };
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver does not answer: {last}");
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("WebDriver JSON");
        if answer["value"]["error"].is_string() {
            panic!("WebDriver {path}: {answer}");
        }
        answer["value"].clone()
    }

    /// Navigate to `url` and wait for the page to load.
    pub async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// Click the first element matching `selector`.
    pub async fn click(&self, selector: &str) {
        let element = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": selector})),
            )
            .await;
        // W3C's key for an element reference.
        let id = element["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap_or_else(|| panic!("no element {selector}: {element}"))
            .to_string();
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// The URL the browser shows.
    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Run `script` (a function body) in the page; its return value.
    pub async fn eval(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// The text of the page's `<main>`, as a person reads it.
    pub async fn text(&self) -> String {
        let text = self
            .eval("const m = document.querySelector('main'); return m ? m.innerText : '';")
            .await;
        text.as_str().unwrap_or_default().to_string()
    }

    /// The text of the first element matching `selector`; empty if none.
    pub async fn text_of(&self, selector: &str) -> String {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.innerText : '';",
            serde_json::Value::from(selector)
        );
        self.eval(&script)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Wait up to `limit` for the text of `selector` to contain `needle`.
    pub async fn wait_for_text(&self, selector: &str, needle: &str, limit: Duration) -> bool {
        let end = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < end {
            if self.text_of(selector).await.contains(needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64 PNG"))
            .expect("a PNG")
    }
}

impl Browser {
    /// End the browser session (the browser exits), then the driver.
    pub async fn quit(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The session's browser ends with its driver.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
