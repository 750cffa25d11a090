//! Just enough HTTP/1.1 for the proxy: read one request from a client, exchange one request
//! with the backend (`Connection: close`, body by `Content-Length` or chunked), write one
//! answer.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::io::{BufRead, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A request or an answer: the first line's parts, headers (names lower-cased), body.
#[derive(Clone, Debug, Default)]
pub struct Message {
    /// Request: method. Answer: unused.
    pub method: String,
    /// Request: path. Answer: unused.
    pub path: String,
    /// Answer: status code.
    pub status: u16,
    /// Headers in arrival order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Message {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn read_head(r: &mut impl BufRead) -> Result<(String, Vec<(String, String)>), String> {
    let mut first = String::new();
    if r.read_line(&mut first).map_err(|e| e.to_string())? == 0 {
        return Err("connection closed before a request line".into());
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).map_err(|e| e.to_string())? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Ok((first.trim_end().to_string(), headers))
}

fn read_body(
    r: &mut impl BufRead,
    headers: &[(String, String)],
    to_eof: bool,
) -> Result<Vec<u8>, String> {
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).map_err(|e| e.to_string())?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| format!("bad chunk size {line:?}"))?;
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            if size == 0 {
                return Ok(body);
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    if let Some(len) = get("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad content-length {len:?}"))?;
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).map_err(|e| e.to_string())?;
        return Ok(body);
    }
    let mut body = Vec::new();
    if to_eof {
        r.read_to_end(&mut body).map_err(|e| e.to_string())?;
    }
    Ok(body)
}

/// Reads one request from a client's connection (`Ok(None)`: the client closed it).
pub fn read_request(r: &mut BufReader<TcpStream>) -> Result<Option<Message>, String> {
    if r.fill_buf().map_err(|e| e.to_string())?.is_empty() {
        return Ok(None);
    }
    let (first, headers) = read_head(r)?;
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let body = read_body(r, &headers, false)?;
    Ok(Some(Message {
        method,
        path,
        status: 0,
        headers,
        body,
    }))
}

/// Sends `req` to `addr` and reads the whole answer (the backend closes after it).
pub fn exchange(addr: SocketAddr, req: &Message, timeout: Duration) -> Result<Message, String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout)).ok();
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        req.method,
        req.path,
        req.body.len()
    );
    for (k, v) in &req.headers {
        if !matches!(
            k.as_str(),
            "host" | "connection" | "content-length" | "transfer-encoding" | "keep-alive"
        ) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
    s.set_nodelay(true).ok();
    let mut all = head.into_bytes();
    all.extend_from_slice(&req.body);
    s.write_all(&all).map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    let (first, headers) = read_head(&mut r)?;
    let status: u16 = first
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {first:?}"))?;
    let body = read_body(&mut r, &headers, true)?;
    Ok(Message {
        method: String::new(),
        path: String::new(),
        status,
        headers,
        body,
    })
}

/// Writes an answer: `Content-Length`, `Connection` (`close` unless `keep_alive`), the
/// given headers (framing headers of the backend's answer are replaced).
pub fn write_answer(
    mut conn: &TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    keep_alive: bool,
) {
    let reason = match status {
        200 => "OK",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-length: {}\r\nconnection: {}\r\n",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    for (k, v) in headers {
        if !matches!(
            k.as_str(),
            "connection" | "content-length" | "transfer-encoding" | "keep-alive"
        ) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
    // one write: a head and a body in two segments would wait on the client's delayed ACK
    let mut all = head.into_bytes();
    all.extend_from_slice(body);
    let _ = conn.write_all(&all);
    let _ = conn.flush();
}

/// Headers as a map (tests, reports).
pub fn header_map(h: &[(String, String)]) -> BTreeMap<String, String> {
    h.iter().cloned().collect()
}
