// Writes tests/traces/mixed.jsonl: a long pseudo-random trace (fixed seed) mixing every
// call, failures with and without Retry-After, requests left in flight for a while, combat
// and decisions at fractional times, so that the runtimes are compared on far more paths
// than the hand-written traces take. Regenerate with `node tests/traces/gen_mixed.mjs`
// (the output is committed; the generator is deterministic).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { freshValues, xorshift32 } from "./gen_lib.mjs";

const { next, pick, chance } = xorshift32(0x9e3779b9);

const AGENTS = ["npc-1", "npc-2", "npc-3", "npc-4", "guard \"ö\""];
const PLACES = ["plaza", "market", "gate", "tower", "cave", "dock"];
const STATES = ["Idle", "Walking", "Combat", "Talking"];
const MEMBERS = ["player_1", "player_2", "npc-9"];
const lines = [];
const emit = (o) => lines.push(JSON.stringify(o));
const last = new Map(); // slot -> last value passed (FORMAT.md's rule for trace authors)
const health = new Map();
let labels = 0;
const made = [];

const fresh = freshValues(last);

emit({ op: "config", config: { target: "batch", seed: 11, chat_max_messages: 4 } });
let now = 0;
let removed = new Set();
for (let step = 0; step < 700; step++) {
  now += pick([0, 0.05, 0.1, 0.25, 0.3, 0.7, 1.1, 2.5]);
  const t = Number(now.toFixed(3));
  const agent = pick(AGENTS.filter((a) => !removed.has(a)));
  const r = next();
  if (r < 0.14) {
    emit({ op: "location", now: t, agent, value: fresh(`${agent}/location`, () => pick(PLACES)) });
  } else if (r < 0.22) {
    emit({ op: "state", now: t, agent, value: fresh(`${agent}/state`, () => pick(STATES)) });
  } else if (r < 0.34) {
    const h = fresh(`${agent}/health`, () => Math.max(0, (health.get(agent) ?? 100) - pick([1, 5, 12, 25, -8, 0.5])));
    health.set(agent, h);
    emit({ op: "health", now: t, agent, value: h });
  } else if (r < 0.44) {
    const field = pick(["mood", "torch", "coins", "goal"]);
    const value = fresh(`${agent}/status.${field}`, () => pick(["calm", "angry", true, false, 3, 7.25, null]));
    const o = { op: "set", now: t, agent, block: "status", field, value, priority: pick(["low", "normal", "high", "critical"]) };
    if (made.length > 0 && chance(0.3)) o.after = [pick(made.slice(-6))];
    if (chance(0.5)) {
      o.as = `c${labels++}`;
      made.push(o.as);
    }
    emit(o);
  } else if (r < 0.5) {
    const field = pick(["sword", "quest"]);
    emit({ op: "tool", now: t, agent, block: "inventory", field, value: fresh(`${agent}/inventory.${field}`, () => pick(["sharp", "dull", "done", 1, 2])), critical: chance(0.3) });
  } else if (r < 0.55) {
    emit({ op: "join", now: t, agent, member: pick(MEMBERS), fields: chance(0.5) ? [["role", pick(["tank", "healer"])]] : [] });
  } else if (r < 0.59) {
    emit({ op: "leave", now: t, agent, member: pick(MEMBERS) });
  } else if (r < 0.64) {
    const others = AGENTS.filter((a) => !removed.has(a) && a !== agent);
    const other = pick(others);
    const a = { agent, block: "status", field: "location", value: fresh(`${agent}/location`, () => pick(PLACES)) };
    const b = { agent: other, block: "group_members", field: `${agent}.is_present`, value: fresh(`${other}/group_members.${agent}.is_present`, () => pick([true, null])), priority: "high" };
    b.as = `g${labels++}`;
    made.push(b.as);
    emit({ op: "atomic", now: t, changes: [a, b] });
  } else if (r < 0.7) {
    emit({ op: "chat", now: t, agent, sender: pick(MEMBERS), text: pick(["hi", "where?", "Grüße\n", "run!"]) });
  } else if (r < 0.77) {
    emit({ op: "decide", now: t, agent });
  } else if (r < 0.775 && removed.size < 1 && step > 350) {
    removed.add(agent);
    emit({ op: "remove", agent });
  } else {
    emit({ op: "poll", now: t });
    const o = next();
    if (o < 0.6) emit({ op: "ack", request: "all" });
    else if (o < 0.75) emit({ op: "fail", now: t, request: "all", retry_after: null });
    else if (o < 0.82) emit({ op: "fail", now: t, request: "all", retry_after: pick([0.5, 1, 2.25]) });
  }
  if (step % 100 === 99) emit({ op: "metrics" });
}
now += 120;
emit({ op: "poll", now: Number(now.toFixed(3)) });
emit({ op: "ack", request: "all" });
emit({ op: "metrics" });

const here = path.dirname(fileURLToPath(import.meta.url));
fs.writeFileSync(path.join(here, "mixed.jsonl"), lines.join("\n") + "\n");
console.log(`mixed.jsonl: ${lines.length} lines`);
