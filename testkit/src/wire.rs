//! Just enough HTTP/1.1 for the stand-in: read a request (body by `Content-Length`), write
//! an answer. A connection stays open for the next request unless the client asks for
//! `Connection: close` (the harness's HttpService does; reqwest keeps connections).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

/// One request as read.
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    /// Names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Request {
    /// Whether the client wants the connection closed after the answer.
    pub fn closes(&self) -> bool {
        self.headers
            .get("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Reads the next request; `None` when the client closed the connection (or sent
/// something unreadable: the connection is then dropped).
pub(crate) fn read_request(r: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// An answer: status, extra headers, JSON body.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: serde_json::Value,
}

impl Answer {
    /// An answer with no extra header.
    pub fn json(status: u16, body: serde_json::Value) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body,
        }
    }

    /// Adds `Retry-After: secs`.
    pub fn retry_after(mut self, secs: u64) -> Answer {
        self.headers.push(("Retry-After", secs.to_string()));
        self
    }
}

/// Writes an answer; whether the connection can take another request.
pub(crate) fn write_answer(w: &mut impl Write, a: &Answer, close: bool) -> bool {
    let text = a.body.to_string();
    let reason = match a.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: {}\r\n",
        a.status,
        text.len(),
        if close { "close" } else { "keep-alive" }
    );
    for (k, v) in &a.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head.push_str(&text);
    w.write_all(head.as_bytes()).and_then(|_| w.flush()).is_ok() && !close
}
