// The end-to-end driver in Node: replays a scenario's calls (npc-sync-sim --calls) frame by
// frame through pkg/node's SyncQueue, sending each request with fetch the way a Node
// developer would (README "Using it from Node"), then flushes at shutdown within
// `flushTimeout` simulated seconds. Each frame's answers are reported at the next frame.
//
//   node e2e/node/driver.mjs CALLS.jsonl OPTIONS_JSON
//
// OPTIONS_JSON is what e2e/src/runtime.rs writes ({ frames, flushTimeout, httpTimeoutMs,
// config: { target } }). Every request carries the simulated time in `x-e2e-time` for the
// proxy. The last stdout line is the report: { flushed, why, flushSeconds, httpCalls }.
//
// With Letta's API it reads every agent-block from Letta before writing it, as the Luau
// bridge does (luau-bridge/src/core.luau `awaitBlock`, process.luau `reads`): `status` and
// `group_members` when it first sees an agent, any other block on first use; at most
// MAX_READS reads at once, each counted in the budget (`takeReadCall`), a 404 read as "",
// a failed read tried again READ_RETRY seconds later.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const { SyncQueue } = require(path.join(root, "pkg/node"));

const [callsPath, optsJson] = process.argv.slice(2);
const opts = JSON.parse(optsJson);
const target = opts.config.target;
const FPS = 60;
const q = new SyncQueue({ target: target.kind === "letta" ? "letta" : "batch" });

// ---- the wire -------------------------------------------------------------------------

let httpCalls = 0;

async function call(url, method, headers, body, now) {
  httpCalls += 1;
  try {
    const res = await fetch(url, {
      method,
      headers: { "content-type": "application/json", "x-e2e-time": String(now), ...headers },
      body,
      signal: AbortSignal.timeout(opts.httpTimeoutMs),
    });
    const text = await res.text();
    const ra = Number(res.headers.get("retry-after"));
    return { ok: res.ok, status: res.status, text, retryAfter: res.headers.has("retry-after") && ra >= 0 ? ra : null };
  } catch {
    return { ok: false, status: 0, text: "", retryAfter: null }; // timeout, dropped connection
  }
}

async function sendBatch(r, now) {
  const body =
    r.kind === "inference"
      ? { request_id: r.id, kind: "inference", agent_id: r.agent, messages: r.messages.map((m) => ({ sender: m.sender, text: m.text })) }
      : {
          request_id: r.id,
          kind: r.kind,
          changes: r.changes.map((c) => ({
            agent_id: c.agent, block: c.block, field: c.field, value: c.value, seq: c.seq,
            ...(c.group !== null ? { group: c.group } : {}),
          })),
        };
  const res = await call(target.url, "POST", target.headers, JSON.stringify(body), now);
  let confirmed = [];
  if (res.ok) {
    try {
      confirmed = (JSON.parse(res.text).confirmed ?? []).map((c) => ({
        agent: c.agent_id, block: c.block, field: c.field, value: c.value ?? null, seq: c.seq,
      }));
    } catch {
      confirmed = [];
    }
  }
  return { id: r.id, ok: res.ok, retryAfter: res.retryAfter, confirmed };
}

async function sendLetta(r, now) {
  const headers = { authorization: `Bearer ${target.apiKey}` };
  const enc = encodeURIComponent;
  let results;
  if (r.kind === "inference") {
    const body = { messages: r.messages.map((m) => ({ role: "user", name: m.sender, content: m.text })) };
    results = [await call(`${target.baseUrl}/v1/agents/${enc(r.agent)}/messages`, "POST", headers, JSON.stringify(body), now)];
  } else {
    // The core renders each agent-block's whole text (docs/letta-block-format.md).
    results = await Promise.all(
      r.blocks.map((w) => {
        const url = `${target.baseUrl}/v1/agents/${enc(w.agent)}/core-memory/blocks/${enc(w.label)}`;
        return call(url, "PATCH", headers, JSON.stringify({ value: w.value }), now);
      }),
    );
  }
  const failed = results.filter((x) => !x.ok);
  const retryAfter = failed.reduce((m, x) => (x.retryAfter !== null && (m === null || x.retryAfter > m) ? x.retryAfter : m), null);
  return { id: r.id, ok: failed.length === 0, retryAfter, confirmed: [] };
}

const send = target.kind === "letta" ? sendLetta : sendBatch;

// ---- Letta: block reads before the first write of each agent-block ---------------------

const AGENT_BLOCKS = ["status", "group_members"];
const MAX_READS = 4;
const READ_RETRY = 2;
const letta = target.kind === "letta";
const awaited = new Set(); // "agent\u0000block" already awaited
const reads = []; // { agent, block, notBefore } waiting for a read call
let readsInFlight = []; // promises of { read, text, why }

function awaitBlock(agent, block) {
  const key = `${agent}\u0000${block}`;
  if (awaited.has(key)) return;
  awaited.add(key);
  q.awaitBlock(agent, block);
  reads.push({ agent, block, notBefore: 0 });
}

// What the bridge awaits before a call reaches the core: the agent's blocks when the agent
// is new, then the block the call writes.
function awaitFor(c) {
  if (!letta) return;
  const touch = (agent, block) => {
    for (const b of AGENT_BLOCKS) awaitBlock(agent, b);
    if (block !== undefined) awaitBlock(agent, block);
  };
  if (c.op === "atomic") for (const x of c.changes) touch(x.agent, x.block);
  else touch(c.agent, c.op === "set" || c.op === "tool" ? c.block : undefined);
}

async function readBlock(read, now) {
  const url = `${target.baseUrl}/v1/agents/${encodeURIComponent(read.agent)}/core-memory/blocks/${encodeURIComponent(read.block)}`;
  const res = await call(url, "GET", { authorization: `Bearer ${target.apiKey}` }, undefined, now);
  if (res.status === 404) return { read, text: "" };
  if (!res.ok) return { read, why: res.status ? `HTTP ${res.status}` : "no answer" };
  try {
    const value = JSON.parse(res.text).value;
    if (typeof value === "string") return { read, text: value };
  } catch {
    // falls through: no usable answer
  }
  return { read, why: "the block's answer has no string `value`" };
}

// Takes in the finished reads, then starts what the bound and the budget allow.
async function stepReads(now) {
  for (const d of await Promise.all(readsInFlight)) {
    if (d.text !== undefined) q.loadBlock(now, d.read.agent, d.read.block, d.text);
    else {
      d.read.notBefore = now + READ_RETRY;
      reads.push(d.read);
    }
  }
  readsInFlight = [];
  for (let i = 0; i < reads.length && readsInFlight.length < MAX_READS; ) {
    if (reads[i].notBefore > now) {
      i += 1;
      continue;
    }
    if (!q.takeReadCall(now)) break;
    readsInFlight.push(readBlock(reads.splice(i, 1)[0], now));
  }
}

// ---- the game -------------------------------------------------------------------------

const handles = new Map(); // the simulator's seq -> this run's handle
function apply(now, c) {
  switch (c.op) {
    case "location": handles.set(c.seq, q.setLocation(now, c.agent, c.value)); break;
    case "state": handles.set(c.seq, q.setState(now, c.agent, c.value)); break;
    case "health": handles.set(c.seq, q.setHealth(now, c.agent, c.value)); break;
    case "set": {
      const change = { agent: c.agent, block: c.block, field: c.field, value: c.value, priority: c.priority };
      if (c.after !== null) change.after = [handles.get(c.after)];
      handles.set(c.seq, q.set(now, change));
      break;
    }
    case "tool": handles.set(c.seq, q.toolResult(now, c.agent, c.block, c.field, c.value, c.critical)); break;
    case "join": handles.set(c.seq, q.joinGroup(now, c.agent, c.member)); break;
    case "leave": handles.set(c.seq, q.leaveGroup(now, c.agent, c.member)); break;
    case "atomic": {
      const ids = q.atomic(now, c.changes.map((x) => ({ agent: x.agent, block: x.block, field: x.field, value: x.value, priority: x.priority })));
      c.changes.forEach((x, i) => handles.set(x.seq, ids[i]));
      break;
    }
    case "chat": q.chat(now, c.agent, c.sender, c.text); break;
    case "decide": q.decide(now, c.agent); break;
    default: throw new Error(`unknown op ${c.op}`);
  }
}

const calls = readFileSync(callsPath, "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
let next = 0;
let inFlight = [];
let flushed = false;
let why = "timeout";
let flushStart = null;
let lastNow = 0;
// At shutdown the driver does what the bridge's flushAll does (luau-bridge/src/process.luau):
// every step flushes the queue (everything pending goes now, within the budget).
for (let frame = 0; ; frame++) {
  const now = frame / FPS;
  lastNow = now;
  for (const o of await Promise.all(inFlight)) {
    if (o.ok) q.ack(o.id, o.confirmed);
    else q.fail(now, o.id, o.retryAfter);
  }
  inFlight = [];
  if (frame < opts.frames) {
    while (next < calls.length && calls[next].f <= frame) {
      awaitFor(calls[next]);
      apply(now, calls[next++]);
    }
  } else {
    if (flushStart === null) {
      flushStart = now;
    }
    if (q.isIdle() && reads.length === 0 && readsInFlight.length === 0) {
      flushed = true;
      why = "flushed";
      break;
    }
    if (now - flushStart >= opts.flushTimeout) break;
  }
  if (letta) await stepReads(now);
  const reqs = flushStart === null ? q.poll(now) : q.flush(now);
  for (const r of reqs) inFlight.push(send(r, now));
}
const flushSeconds = flushStart === null ? 0 : lastNow - flushStart;
if (!flushed) {
  // what is left, for the report (stderr; the last stdout line stays the report)
  const m = q.metrics();
  console.error(`flush incomplete after ${flushSeconds} s: queueDepth ${m.queueDepth}, metrics ${JSON.stringify(m)}`);
}
console.log(JSON.stringify({ flushed, why, flushSeconds, httpCalls }));
