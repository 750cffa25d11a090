//! The backends of a run: the Letta stand-in (the harness's server, `luau-bridge/harness`)
//! and the real batch endpoint server (`npc-sync-gateway`, run as its binary, SQLite in a
//! temporary directory) in front of it.
//!
//! `gateway/tests/support/letta.rs` is a second Letta stand-in (the gateway's own tests);
//! the runs here use the harness's one only.

use crate::check::LettaView;
use npc_sync_luau_harness::server::{Answer, TestServer};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shared secret game servers send the gateway.
pub const TOKEN: &str = "e2e-token-0123456789abcdef";

/// Creates every (agent, block) as an empty block, as if the agents existed in Letta before
/// the game started (the gateway refuses blocks Letta does not have).
pub fn create_blocks(letta: &TestServer, agents: &[String], blocks: &[String]) {
    for a in agents {
        for b in blocks {
            letta.set_block(a, b, "");
        }
    }
}

/// What the stand-in holds and received.
pub fn letta_view(letta: &TestServer) -> LettaView {
    letta.with(|s| {
        let mut writes = Vec::new();
        for r in &s.log {
            if r.method != "PATCH" || r.answer != Answer::Normal {
                continue;
            }
            let segs: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
            if let ["v1", "agents", agent, "core-memory", "blocks", label] = segs.as_slice() {
                let text = serde_json::from_str::<serde_json::Value>(&r.body)
                    .ok()
                    .and_then(|j| j["value"].as_str().map(str::to_string));
                if let Some(text) = text {
                    writes.push((agent.to_string(), label.to_string(), text));
                }
            }
        }
        let mut messages = Vec::new();
        for (agent, body) in &s.messages {
            for m in body["messages"].as_array().into_iter().flatten() {
                if let Some(text) = m["content"].as_str() {
                    messages.push((agent.clone(), text.to_string()));
                }
            }
        }
        LettaView {
            blocks: s.blocks.clone(),
            writes,
            messages,
        }
    })
}

/// A running `npc-sync-gateway` (killed when dropped).
pub struct Gateway {
    /// Where it listens.
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

/// Where cargo put the workspace's release binaries.
pub fn release_bin(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    dir.join("release").join(name)
}

fn free_port() -> Result<SocketAddr, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map_err(|e| e.to_string())
}

impl Gateway {
    /// Starts the binary against `letta_url`; waits until it serves.
    pub fn start(letta_url: &str) -> Result<Gateway, String> {
        let bin = release_bin("npc-sync-gateway");
        if !bin.exists() {
            return Err(format!(
                "{} is missing: build it first (cargo build --release -p npc-sync-gateway)",
                bin.display()
            ));
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let addr = free_port()?;
        let db = format!("sqlite:{}", dir.path().join("gateway.db").display());
        let child = Command::new(&bin)
            .args([
                "--listen",
                &addr.to_string(),
                "--letta-url",
                letta_url,
                "--token",
                TOKEN,
            ])
            .args(["--database", &db])
            // Simulated time runs many times faster than the wall clock, so the gateway's
            // own per-server rate limit (wall clock) would refuse what the queue's budget
            // (simulated minutes) allows: it is lifted; the proxy injects 429s instead.
            .args(["--rate-per-s", "100000", "--rate-burst", "100000"])
            .args(["--min-backoff-ms", "5", "--max-backoff-ms", "50"])
            .env("NPC_SYNC_GATEWAY_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut gw = Gateway {
            addr,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = gw.child.try_wait() {
                return Err(format!("npc-sync-gateway exited at start: {status}"));
            }
            if Instant::now() > deadline {
                return Err("npc-sync-gateway did not listen within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(gw)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
