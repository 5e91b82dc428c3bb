//! Headless Chromium on one of the emulator's pages, driven over the Chrome DevTools Protocol
//! (CDP): evaluate JavaScript in the page and take screenshots. The player tests use it to see
//! what a person would see.
//!
//! Three CDP calls are all the tests need (`Runtime.evaluate`, `Page.captureScreenshot`, the
//! `/json/list` target lookup), so they are written here over `tokio-tungstenite`: the CDP
//! crates (`chromiumoxide`, `headless_chrome`) compile the whole generated protocol, tens of
//! thousands of lines, for them.

use std::process::Child;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use kvs_emulator::EmulatorHandle;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

type DevTools =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long one CDP call may take.
const CALL_BOUND: Duration = Duration::from_secs(30);

/// Headless Chromium showing one page; killed when dropped.
pub struct PageBrowser {
    child: Child,
    devtools: DevTools,
    next_id: u64,
    _home: tempfile::TempDir,
}

impl std::fmt::Debug for PageBrowser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageBrowser")
            .field("pid", &self.child.id())
            .finish()
    }
}

impl PageBrowser {
    /// Open `path_and_query` (e.g. `/_emulator/v1/player.html?stream=cam`) of `emulator` in a
    /// 1280×800 window that plays media without a click.
    ///
    /// # Panics
    /// When Chromium cannot run or its DevTools endpoint does not answer within 30 s.
    pub async fn open(emulator: &EmulatorHandle, path_and_query: &str) -> Self {
        let page = format!("{}{path_and_query}", emulator.endpoint_url());
        let (child, home) = crate::browser::launch(
            emulator,
            &page,
            &[
                "--remote-debugging-port=0",
                "--window-size=1280,800",
                "--autoplay-policy=no-user-gesture-required",
            ],
        );
        // Chromium writes the port it picked into the profile once it listens.
        let port_file = home.path().join("profile/DevToolsActivePort");
        let port: u16 = crate::wait_until_within(CALL_BOUND, "Chromium's DevTools port", || {
            std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|text| text.lines().next()?.trim().parse().ok())
                .ok_or("no DevToolsActivePort yet")
        })
        .await;
        let targets = http_get_json(port, "/json/list").await;
        let socket = targets
            .as_array()
            .and_then(|targets| {
                targets
                    .iter()
                    .find(|t| t["type"] == "page" && t["url"].as_str() == Some(page.as_str()))
                    .or_else(|| targets.iter().find(|t| t["type"] == "page"))
            })
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap_or_else(|| panic!("no page target in {targets}"))
            .to_owned();
        let (devtools, _) = tokio_tungstenite::connect_async(&socket)
            .await
            .expect("the page's DevTools WebSocket");
        Self {
            child,
            devtools,
            next_id: 1,
            _home: home,
        }
    }

    /// The value of `expression` in the page (a promise is awaited), as JSON.
    ///
    /// # Panics
    /// When the expression throws.
    pub async fn evaluate(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{expression} threw: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// A PNG of the page as it is drawn now.
    pub async fn screenshot(&mut self) -> Vec<u8> {
        let result = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(result["data"].as_str().expect("screenshot data"))
            .expect("base64 screenshot")
    }

    /// One CDP call and its result (events in between are skipped: none is enabled).
    async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({ "id": id, "method": method, "params": params });
        let answer = async {
            self.devtools
                .send(Message::text(request.to_string()))
                .await
                .expect("a CDP request sent");
            loop {
                let message = self
                    .devtools
                    .next()
                    .await
                    .expect("Chromium closed DevTools")
                    .expect("a DevTools message");
                let Message::Text(text) = message else {
                    continue;
                };
                let value: Value = serde_json::from_str(&text).expect("CDP JSON");
                if value["id"] == id {
                    return value;
                }
            }
        };
        let answer = tokio::time::timeout(CALL_BOUND, answer)
            .await
            .unwrap_or_else(|_| panic!("{method} took more than {CALL_BOUND:?}"));
        if let Some(error) = answer.get("error") {
            panic!("{method} failed: {error}");
        }
        answer["result"].clone()
    }
}

impl Drop for PageBrowser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET http://127.0.0.1:<port><path>` as JSON (DevTools' HTTP side, which answers HTTP/1.1
/// only and keeps the connection open: the body is read to its `Content-Length`).
async fn http_get_json(port: u16, path: &str) -> Value {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("DevTools' HTTP port");
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("a DevTools HTTP request");
        let mut response = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let text = String::from_utf8_lossy(&response);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .expect("DevTools sends Content-Length");
                if body.len() >= length {
                    return body.to_owned();
                }
            }
            let n = stream
                .read(&mut chunk)
                .await
                .expect("a DevTools HTTP response");
            assert!(n > 0, "DevTools closed the connection mid-response: {text}");
            response.extend_from_slice(&chunk[..n]);
        }
    };
    let body = tokio::time::timeout(CALL_BOUND, exchange)
        .await
        .expect("DevTools answers within 30 s");
    serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("DevTools' {path} is not JSON ({e}): {body}"))
}
