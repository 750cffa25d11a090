//! The fault-injecting proxy on 127.0.0.1: every request from the game's HTTP client goes
//! through it to the backend; [`FaultPlan`] decides what happens to it, and every request
//! is recorded (simulated time, path, what the client got) for the checks and the budget.
//!
//! Time is the run's simulated time, not the wall clock: the Luau driver sets [`SimClock`]
//! every frame; the Node driver sends it as the header `x-e2e-time` (seconds), which the
//! proxy removes before forwarding.

use crate::faults::{request_key, Fault, FaultPlan};
use crate::wire::{self, Message};
use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The header carrying the simulated time of a request (removed before forwarding).
pub const TIME_HEADER: &str = "x-e2e-time";

/// The run's simulated time in seconds, shared with the driver.
#[derive(Clone, Default)]
pub struct SimClock(Arc<AtomicU64>);

impl SimClock {
    /// Sets the time.
    pub fn set(&self, seconds: f64) {
        self.0.store(seconds.to_bits(), Ordering::SeqCst);
    }
    /// The time.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::SeqCst))
    }
}

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Record {
    /// Arrival order (0, 1, ...).
    pub order: u64,
    /// Simulated time of arrival, seconds.
    pub time: f64,
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// The request body.
    pub body: String,
    /// What the proxy did.
    pub fault: Fault,
    /// The backend's status, when forwarded and answered.
    pub upstream_status: Option<u16>,
    /// The status the client got (`None`: no answer: dropped, lost, or too late).
    pub client_status: Option<u16>,
}

/// Proxy settings.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The backend.
    pub upstream: SocketAddr,
    /// The fault decisions.
    pub plan: FaultPlan,
    /// How long a slow answer is held (longer than the sender's timeout).
    pub slow_delay: Duration,
    /// Timeout of one exchange with the backend.
    pub upstream_timeout: Duration,
}

struct Shared {
    cfg: ProxyConfig,
    clock: SimClock,
    log: Mutex<Vec<Record>>,
    seen: Mutex<(u64, HashMap<u64, u64>)>,
    stop: AtomicBool,
}

/// A running proxy (stops when dropped).
pub struct Proxy {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Starts on a free port.
    pub fn start(cfg: ProxyConfig, clock: SimClock) -> Result<Proxy, String> {
        cfg.plan.rates.validate()?;
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("proxy: bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared {
            cfg,
            clock,
            log: Mutex::new(Vec::new()),
            seen: Mutex::new((0, HashMap::new())),
            stop: AtomicBool::new(false),
        });
        let sh = Arc::clone(&shared);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sh.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let sh = Arc::clone(&sh);
                std::thread::spawn(move || handle(&sh, conn));
            }
        });
        Ok(Proxy {
            base: format!("http://{addr}"),
            addr,
            shared,
        })
    }

    /// Every request, in arrival order, once each one that arrived has been handled (a
    /// slow answer is still held for a while), waiting at most `limit`.
    pub fn settle(&self, limit: Duration) -> Vec<Record> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let arrived = self.shared.seen.lock().unwrap().0 as usize;
            if self.shared.log.lock().unwrap().len() >= arrived
                || std::time::Instant::now() > deadline
            {
                return self.records();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every request so far, in arrival order.
    pub fn records(&self) -> Vec<Record> {
        let mut v = self.shared.log.lock().unwrap().clone();
        v.sort_by_key(|r| r.order);
        v
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Serves one client connection: requests one after the other (keep-alive) until the
/// client closes it, asks for `Connection: close`, or a fault cuts it.
fn handle(sh: &Shared, conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut reader = std::io::BufReader::new(read_half);
    loop {
        match wire::read_request(&mut reader) {
            Ok(Some(req)) => {
                if !handle_one(sh, &conn, req) {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                if std::env::var_os("E2E_DEBUG").is_some() {
                    eprintln!("proxy: unreadable request: {e}");
                }
                return;
            }
        }
    }
}

/// Handles one request; whether the connection stays open.
fn handle_one(sh: &Shared, conn: &TcpStream, mut req: Message) -> bool {
    let keep_alive = !req
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let time = req
        .header(TIME_HEADER)
        .and_then(|t| t.parse::<f64>().ok())
        .unwrap_or_else(|| sh.clock.get());
    req.headers.retain(|(k, _)| k != TIME_HEADER);
    let key = request_key(&req.method, &req.path, &req.body);
    let (order, fault) = {
        let mut seen = sh.seen.lock().unwrap();
        let order = seen.0;
        seen.0 += 1;
        let n = seen.1.entry(key).or_insert(0);
        let occurrence = *n;
        *n += 1;
        (order, sh.cfg.plan.decide(key, occurrence))
    };
    let mut upstream_status = None;
    let mut client_status = None;
    let mut open = keep_alive;
    match fault {
        Fault::ServerError(code) => {
            let body = br#"{"error":"injected server error"}"#;
            wire::write_answer(conn, code, &json_type(), body, keep_alive);
            client_status = Some(code);
        }
        Fault::TooMany(secs) => {
            let mut h = json_type();
            h.push(("retry-after".into(), secs.to_string()));
            wire::write_answer(
                conn,
                429,
                &h,
                br#"{"error":"injected rate limit"}"#,
                keep_alive,
            );
            client_status = Some(429);
        }
        Fault::Dropped => {
            let _ = conn.shutdown(Shutdown::Both);
            open = false;
        }
        Fault::Pass | Fault::Slow | Fault::LostResponse => {
            let answer = wire::exchange(sh.cfg.upstream, &req, sh.cfg.upstream_timeout)
                .unwrap_or_else(|e| Message {
                    status: 502,
                    headers: json_type(),
                    body: format!("{{\"error\":\"proxy: backend unreachable: {e}\"}}").into_bytes(),
                    ..Message::default()
                });
            upstream_status = Some(answer.status);
            match fault {
                Fault::LostResponse => {
                    let _ = conn.shutdown(Shutdown::Both);
                    open = false;
                }
                Fault::Slow => {
                    std::thread::sleep(sh.cfg.slow_delay);
                    // the client gave up long ago; whatever it reads now is not an answer
                    let _ = conn.shutdown(Shutdown::Both);
                    open = false;
                }
                _ => {
                    wire::write_answer(
                        conn,
                        answer.status,
                        &answer.headers,
                        &answer.body,
                        keep_alive,
                    );
                    client_status = Some(answer.status);
                }
            }
        }
    }
    sh.log.lock().unwrap().push(Record {
        order,
        time,
        method: req.method,
        path: req.path,
        body: String::from_utf8_lossy(&req.body).into_owned(),
        fault,
        upstream_status,
        client_status,
    });
    open
}

fn json_type() -> Vec<(String, String)> {
    vec![("content-type".into(), "application/json".into())]
}
