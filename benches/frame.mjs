// Frame cost in Node through pkg/node: the same workload as benches/frame.rs and
// luau-bridge/facade/benches/luau_frame.rs (read their headers): N NPCs each change
// `status.x` to a new number (frame + NPC index + 1) at 60 Hz, then one poll, every request
// acknowledged at once; frames 1 to 1,900 (NSQ_FRAMES) after a 120-frame warm-up, three
// runs per case on fresh queues, the fastest reported.
//
// Prints one line per case, exactly:
// `frame runtime=node npcs=N ms=X share=Y us_per_change=Z`
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { SyncQueue } = require(path.join(root, "pkg/node"));

const FRAMES = Number(process.env.NSQ_FRAMES ?? 1900);
const WARMUP_FRAMES = 120;
const FRAME_MS = 16.7;
const RUNS = 3;

/** Milliseconds spent in change calls and in the whole frames. */
function run(npcs, frames) {
  const q = new SyncQueue({});
  const agents = Array.from({ length: npcs }, (_, i) => `npc-${i}`);
  let inChanges = 0;
  let inFrames = 0;
  for (let f = 1; f <= frames; f++) {
    const now = f / 60;
    const t0 = performance.now();
    for (let i = 0; i < npcs; i++) {
      q.set(now, { agent: agents[i], block: "status", field: "x", value: f + i + 1 });
    }
    const t1 = performance.now();
    for (const r of q.poll(now)) q.ack(r.id);
    const t2 = performance.now();
    inChanges += t1 - t0;
    inFrames += t2 - t0;
  }
  q.free();
  return [inChanges, inFrames];
}

for (const npcs of [100, 1000]) {
  run(npcs, WARMUP_FRAMES);
  let [inChanges, inFrames] = [Infinity, Infinity];
  for (let i = 0; i < RUNS; i++) {
    const [c, f] = run(npcs, FRAMES);
    if (f < inFrames) [inChanges, inFrames] = [c, f];
  }
  const ms = inFrames / FRAMES;
  const usPerChange = (inChanges * 1e3) / (npcs * FRAMES);
  console.log(
    `frame runtime=node npcs=${npcs} ms=${ms.toFixed(3)} share=${(ms / FRAME_MS).toFixed(4)} us_per_change=${usPerChange.toFixed(3)}`,
  );
}
