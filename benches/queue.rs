//! Queue cost per game frame, natively: 300 NPCs whose location changes every frame and
//! whose health changes twice a second, polled at 60 frames a second, every request
//! acknowledged at once. Reported as ratios measured in this one run: the queue's share of
//! a 60 Hz frame, and the cost of a frame's polls against its change calls.
//!
//! Run with `./build.sh bench` (or `cargo bench -p npc-sync --bench queue`).

use npc_sync::{Config, Queue};
use std::hint::black_box;
use std::time::{Duration, Instant};

const NPCS: usize = 300;
const FPS: f64 = 60.0;
const SECONDS: f64 = 60.0;

fn main() {
    let mut q = Queue::new(Config::default()).expect("default config");
    let agents: Vec<_> = (0..NPCS)
        .map(|i| q.agent(&format!("agent-npc-{i:04}")).expect("agent"))
        .collect();
    let locations: Vec<String> = (0..64)
        .map(|i| format!("zone-{} ({i},{})", i % 7, i * 3))
        .collect();
    let frames = (SECONDS * FPS) as usize;
    let mut change_time = Duration::ZERO;
    let mut poll_time = Duration::ZERO;
    let mut changes = 0u64;
    let mut requests = 0u64;
    let mut worst_frame = Duration::ZERO;
    for frame in 0..frames {
        let now = frame as f64 / FPS;
        let t0 = Instant::now();
        for (i, a) in agents.iter().enumerate() {
            let loc = &locations[(frame + i) % locations.len()];
            q.set_location(now, *a, loc).expect("location");
            changes += 1;
            if (frame + i) % 30 == 0 {
                let hp = 100.0 - ((frame / 30 + i) % 25) as f64;
                q.set_health(now, *a, hp).expect("health");
                changes += 1;
            }
        }
        let t1 = Instant::now();
        let out = q.poll(now).expect("poll");
        for r in &out {
            q.ack(r.id, &[]).expect("ack");
        }
        requests += out.len() as u64;
        black_box(&out);
        let t2 = Instant::now();
        change_time += t1 - t0;
        poll_time += t2 - t1;
        worst_frame = worst_frame.max(t2 - t0);
    }
    let frame_budget = 1.0 / FPS;
    let per_frame = (change_time + poll_time).as_secs_f64() / frames as f64;
    println!("queue bench: {NPCS} NPCs, {SECONDS} s at {FPS} fps, {changes} changes, {requests} requests");
    println!(
        "  ns per change call            {:>10.0}",
        change_time.as_nanos() as f64 / changes as f64
    );
    println!("  queue time per frame (ms)     {:>10.4}", per_frame * 1e3);
    println!(
        "  ratio: queue / 60 Hz frame    {:>10.4}",
        per_frame / frame_budget
    );
    println!(
        "  ratio: worst frame / frame    {:>10.4}",
        worst_frame.as_secs_f64() / frame_budget
    );
    println!(
        "  ratio: poll+ack / change calls{:>10.4}",
        poll_time.as_secs_f64() / change_time.as_secs_f64()
    );
    println!(
        "  ratio: requests / changes     {:>10.6}",
        requests as f64 / changes as f64
    );
}
