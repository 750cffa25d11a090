//! The client behind the stand-in `HttpService:RequestAsync`: one blocking HTTP/1.1 exchange
//! per request on its own thread, so the Luau side only ever waits by yielding.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One request as `RequestAsync` takes it (secrets already resolved).
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// `http://host:port/path` (only plain HTTP: the tests' server is local).
    pub url: String,
    /// `GET`, `POST`, `PATCH`, ...
    pub method: String,
    /// Header names and values, in a stable order.
    pub headers: BTreeMap<String, String>,
    /// The body, possibly empty.
    pub body: String,
}

/// What came back: a response of any status, or the error `RequestAsync` raises.
#[derive(Debug, Clone)]
pub enum HttpOutcome {
    /// Any HTTP answer (`Success` is decided from the status by the Luau side).
    Response {
        /// Status code.
        status: u16,
        /// Reason phrase.
        reason: String,
        /// Headers, names lower-cased as Roblox reports them.
        headers: BTreeMap<String, String>,
        /// Body text.
        body: String,
    },
    /// No answer: the message Roblox raises (`HttpError: Timedout`, `HttpError: ConnectFail`).
    Error(String),
}

/// Requests in flight and finished answers, shared with the worker threads.
#[derive(Default)]
pub struct HttpHub {
    state: Mutex<HubState>,
    done_cv: Condvar,
}

#[derive(Default)]
struct HubState {
    next_id: u64,
    running: usize,
    finished: Vec<(u64, HttpOutcome)>,
    /// Requests made over the hub's life.
    started: u64,
}

impl HttpHub {
    /// Starts `req` on a worker thread; its outcome is collected by [`HttpHub::take`].
    pub fn start(self: &Arc<Self>, req: HttpRequest, timeout: Duration) -> u64 {
        let id = {
            let mut s = self.state.lock().unwrap();
            s.next_id += 1;
            s.running += 1;
            s.started += 1;
            s.next_id
        };
        let hub = Arc::clone(self);
        std::thread::spawn(move || {
            let outcome = exchange(&req, timeout);
            let mut s = hub.state.lock().unwrap();
            s.running -= 1;
            s.finished.push((id, outcome));
            hub.done_cv.notify_all();
        });
        id
    }

    /// The finished outcomes, in the order their requests were started. With `settle`, first
    /// waits until no request is running (each has its own timeout, so this ends).
    pub fn take(&self, settle: bool) -> Vec<(u64, HttpOutcome)> {
        let mut s = self.state.lock().unwrap();
        if settle {
            while s.running > 0 {
                s = self.done_cv.wait(s).unwrap();
            }
        }
        let mut out = std::mem::take(&mut s.finished);
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// Requests whose exchange has not finished.
    pub fn running(&self) -> usize {
        self.state.lock().unwrap().running
    }

    /// Requests started over the hub's life.
    pub fn started(&self) -> u64 {
        self.state.lock().unwrap().started
    }
}

fn exchange(req: &HttpRequest, timeout: Duration) -> HttpOutcome {
    match try_exchange(req, timeout) {
        Ok(o) => o,
        Err(e) => HttpOutcome::Error(e),
    }
}

fn try_exchange(req: &HttpRequest, timeout: Duration) -> Result<HttpOutcome, String> {
    let rest = req
        .url
        .strip_prefix("http://")
        .ok_or_else(|| format!("HttpError: InvalidUrl ({})", req.url))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let deadline = Instant::now() + timeout;
    let addr = host
        .parse::<std::net::SocketAddr>()
        .map_err(|_| format!("HttpError: DnsResolve ({host})"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|_| "HttpError: ConnectFail".to_string())?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        req.method,
        path,
        host,
        req.body.len()
    );
    for (k, v) in &req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(req.body.as_bytes()))
        .map_err(|_| "HttpError: ConnectFail".to_string())?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("HttpError: Timedout".into());
        }
        stream.set_read_timeout(Some(left)).ok();
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err("HttpError: Timedout".into())
            }
            Err(_) => return Err("HttpError: NetFail".into()),
        }
    }
    parse_response(&raw).ok_or_else(|| "HttpError: NetFail".to_string())
}

fn parse_response(raw: &[u8]) -> Option<HttpOutcome> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    parts.next()?;
    let status: u16 = parts.next()?.parse().ok()?;
    let reason = parts.next().unwrap_or("").to_string();
    let mut headers = BTreeMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    Some(HttpOutcome::Response {
        status,
        reason,
        headers,
        body: body.to_string(),
    })
}
