//! Frame cost natively through the public Rust API (`Queue::set`, names as strings): the
//! workload of `luau-bridge/facade/benches/luau_frame.rs` (which measures the same through
//! the Luau facade's slots) and of `benches/frame.mjs` (Node). N NPCs each change
//! `status.x` to a new number (frame + NPC index + 1) at 60 Hz, then one `poll`, every
//! request acknowledged at once; frames 1 to 1,900 (`NSQ_FRAMES`), so one routine batch of
//! every NPC's field falls inside, after a 120-frame warm-up on a separate queue. Each case runs
//! three times on fresh queues and reports its fastest run (the machine is shared: the
//! slower runs measure the neighbours).
//!
//! Prints one line per case, exactly:
//! `frame runtime=native npcs=N ms=X share=Y us_per_change=Z`
//! where `ms` is the mean cost of a frame (change calls + poll + acks), `share` is
//! `ms / 16.7` (a 60 Hz frame), and `us_per_change` the mean cost of one change call.

use npc_sync::{AgentId, Change, Config, Queue, Value};
use std::hint::black_box;
use std::time::Instant;

const FRAMES: u32 = 1_900;
const WARMUP_FRAMES: u32 = 120;
const FRAME_MS: f64 = 16.7;
const RUNS: usize = 3;

/// Seconds spent in change calls and in the whole frames.
fn run(npcs: usize, frames: u32) -> (f64, f64) {
    let mut q = Queue::new(Config::default()).expect("default config");
    let agents: Vec<AgentId> = (0..npcs)
        .map(|i| q.agent(&format!("npc-{i}")).expect("agent id"))
        .collect();
    let (mut in_changes, mut in_frames) = (0.0, 0.0);
    for f in 1..=frames {
        let now = f64::from(f) / 60.0;
        let t0 = Instant::now();
        for (i, a) in agents.iter().enumerate() {
            let v = f64::from(f) + i as f64 + 1.0;
            let c = Change::new(*a, "status", "x", Value::Number(v));
            black_box(q.set(now, c).expect("change"));
        }
        let t1 = Instant::now();
        for r in q.poll(now).expect("poll") {
            q.ack(r.id, &[]).expect("ack");
        }
        let t2 = Instant::now();
        in_changes += (t1 - t0).as_secs_f64();
        in_frames += (t2 - t0).as_secs_f64();
    }
    (in_changes, in_frames)
}

fn main() {
    let frames: u32 = std::env::var("NSQ_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FRAMES);
    for npcs in [100usize, 1_000] {
        run(npcs, WARMUP_FRAMES);
        let (in_changes, in_frames) = (0..RUNS)
            .map(|_| run(npcs, frames))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("at least one run");
        let ms = in_frames * 1e3 / f64::from(frames);
        let us_per_change = in_changes * 1e6 / (npcs as f64 * f64::from(frames));
        println!(
            "frame runtime=native npcs={npcs} ms={ms:.3} share={:.4} us_per_change={us_per_change:.3}",
            ms / FRAME_MS
        );
    }
}
