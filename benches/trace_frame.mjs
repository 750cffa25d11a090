// The frame bench's trace (luau-bridge/harness/benches/versus.rs writes it to
// target/bench/trace-N.json) through pkg/node's SyncQueue, every request acknowledged at
// once: N NPCs change status.x every frame (value frame + npc), plus the trace's health,
// state and decision events. Run by the bench itself: `node benches/trace_frame.mjs TRACE`.
// After a 120-frame warm-up on a separate queue, three runs on fresh queues; prints the
// fastest as one JSON object (seconds in the trace's calls and in poll + acks).
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { readFileSync } from "node:fs";
import path from "node:path";

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { SyncQueue } = require(path.join(root, "pkg/node"));

const file = process.argv[2];
if (!file) {
  console.error("usage: node benches/trace_frame.mjs TRACE.json");
  process.exit(2);
}
const t = JSON.parse(readFileSync(file, "utf8"));
const RUNS = 3;

function run(frames) {
  const q = new SyncQueue({});
  const ids = Array.from({ length: t.npcs }, (_, i) => `npc-${i + 1}`);
  const r = { calls_s: 0, step_s: 0, worst_s: 0, requests: 0, changes_sent: 0, decisions_fresh: 0 };
  for (let f = 0; f <= frames; f++) {
    const now = f / 60;
    const t0 = performance.now();
    for (let i = 0; i < t.npcs; i++) {
      const v = f === 0 ? 0 : f + i + 1;
      q.set(now, { agent: ids[i], block: "status", field: "x", value: v });
    }
    for (let e = t.starts[f] - 1; e < t.starts[f + 1] - 1; e++) {
      const id = ids[t.who[e] - 1];
      const k = t.kinds[e];
      if (k === 2) q.setHealth(now, id, t.vals[e]);
      else if (k === 3) q.setState(now, id, t.vals[e] === 1 ? "Combat" : "Idle");
      else if (q.decide(now, id).kind === "fresh") r.decisions_fresh++;
    }
    const t1 = performance.now();
    for (const req of q.poll(now)) {
      r.requests += req.calls;
      r.changes_sent += req.changes.length;
      q.ack(req.id);
    }
    const t2 = performance.now();
    if (f > 0) {
      r.calls_s += (t1 - t0) / 1e3;
      r.step_s += (t2 - t1) / 1e3;
      r.worst_s = Math.max(r.worst_s, (t2 - t0) / 1e3);
    }
  }
  q.free();
  return r;
}

run(Math.min(120, t.frames));
let best = null;
for (let i = 0; i < RUNS; i++) {
  const r = run(t.frames);
  if (best === null || r.calls_s + r.step_s < best.calls_s + best.step_s) best = r;
}
console.log(JSON.stringify(best));
