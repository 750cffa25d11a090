// Writes tests/traces/absorb.jsonl: frames of NPCs changing pending number and bool fields
// every frame (the changes the Luau bridge keeps outside the core, luau-bridge/ABI.md
// "Absorption"), interleaved with what ends or interrupts keeping them: decisions, chat,
// health drops, acks, failures (with and without Retry-After), atomic groups over a
// kept field, dependencies on kept changes (`after`), values equal to what the backend
// holds, priority changes, joins and leaves, removal and return of an agent, metrics.
// A poll every frame (most of them skipped by the bridge: nothing due). Regenerate with
// `node tests/traces/gen_absorb.mjs` (the output is committed; the generator is
// deterministic).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { freshValues, xorshift32 } from "./gen_lib.mjs";

const { next, pick, chance } = xorshift32(0x2545f491);

const AGENTS = ["npc-1", "npc-2", "npc-3", "npc-4", "npc-5", "npc-6"];
const lines = [];
const emit = (o) => lines.push(JSON.stringify(o));
const last = new Map(); // slot -> last value passed (FORMAT.md's rule for trace authors)
const x = new Map();
let labels = 0;
const made = []; // labels of kept-looking changes, for `after`
const removed = new Set();
let inFlight = false;

const fresh = freshValues(last);

emit({
  op: "config",
  config: { target: "batch", seed: 5, batch_interval_s: 2, high_priority_delay_s: 0.5, retry_base_s: 0.3 },
});
let now = 0;
for (let frame = 0; frame < 240; frame++) {
  now += pick([0.05, 0.05, 0.1, 0.1, 0.2]);
  const t = Number(now.toFixed(3));
  for (const agent of AGENTS) {
    if (removed.has(agent)) {
      continue;
    }
    // the per-frame change: a number walking in steps of 0.25, sometimes back to 0 (the
    // value acknowledged at the start: equal to what the backend has)
    const v = fresh(`${agent}/x`, () =>
      chance(0.05) ? 0 : Number(((x.get(agent) ?? 0) + pick([-0.75, -0.25, 0.25, 0.5])).toFixed(2)),
    );
    x.set(agent, v);
    const o = { op: "set", now: t, agent, block: "status", field: "x", value: v };
    if (chance(0.08)) {
      o.priority = pick(["low", "high"]);
    }
    if (chance(0.1)) {
      o.as = `c${++labels}`;
      made.push(o.as);
    }
    emit(o);
    if (chance(0.3)) {
      emit({ op: "set", now: t, agent, block: "status", field: "armed", value: fresh(`${agent}/armed`, () => chance(0.5)) });
    }
  }
  const live = AGENTS.filter((a) => !removed.has(a));
  const agent = pick(live);
  const r = next();
  if (r < 0.12) {
    emit({ op: "decide", now: t, agent });
  } else if (r < 0.16) {
    emit({ op: "chat", now: t, agent, sender: "player_1", text: `hello ${frame}` });
  } else if (r < 0.22) {
    emit({ op: "health", now: t, agent, value: fresh(`${agent}/health`, () => pick([100, 90, 75, 40, 95])) });
  } else if (r < 0.27 && made.length > 0) {
    // a dependency on an earlier change (often one the bridge kept)
    emit({
      op: "set",
      now: t,
      agent,
      block: "status",
      field: "torch",
      value: fresh(`${agent}/torch`, () => chance(0.5)),
      after: [pick(made)],
    });
  } else if (r < 0.31) {
    const other = pick(live);
    const v = fresh(`${agent}/x`, () => Number(((x.get(agent) ?? 0) + 1.5).toFixed(2)));
    x.set(agent, v);
    emit({
      op: "atomic",
      now: t,
      changes: [
        { agent, block: "status", field: "x", value: v },
        { agent: other, block: "status", field: "location", value: fresh(`${other}/location`, () => pick(["gate", "dock", "cave"])) },
      ],
    });
  } else if (r < 0.34) {
    emit({ op: "join", now: t, agent, member: pick(["player_1", "player_2"]), fields: [["role", "ally"]] });
  } else if (r < 0.36) {
    emit({ op: "leave", now: t, agent, member: pick(["player_1", "player_2"]) });
  } else if (r < 0.38 && live.length > 3) {
    emit({ op: "remove", agent });
    removed.add(agent);
  } else if (r < 0.42 && removed.size > 0) {
    // a removed agent comes back (its first change registers it again)
    const back = pick([...removed]);
    removed.delete(back);
    last.delete(`${back}/x`);
    emit({ op: "set", now: t, agent: back, block: "status", field: "x", value: fresh(`${back}/x`, () => 7) });
    x.set(back, 7);
  } else if (r < 0.45) {
    emit({ op: "set", now: t, agent, block: "status", field: "mood", value: fresh(`${agent}/mood`, () => pick(["calm", "angry"])) });
  }
  emit({ op: "poll", now: t });
  if (inFlight && chance(0.3)) {
    if (chance(0.8)) {
      emit({ op: "ack", request: "all" });
    } else {
      emit({ op: "fail", now: t, request: "all", retry_after: chance(0.5) ? null : 0.5 });
    }
    inFlight = false;
  } else {
    inFlight = true;
  }
  if (frame % 40 === 39) {
    emit({ op: "metrics" });
  }
}
emit({ op: "flush", now: Number((now + 1).toFixed(3)) });
emit({ op: "ack", request: "all" });
emit({ op: "metrics" });

const here = path.dirname(fileURLToPath(import.meta.url));
fs.writeFileSync(path.join(here, "absorb.jsonl"), lines.join("\n") + "\n");
