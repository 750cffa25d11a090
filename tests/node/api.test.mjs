// The whole SyncQueue API of pkg/node and its errors, headless (no network: requests are
// data, outcomes are reported by hand).
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { SyncQueue } from "./load.mjs";

/** Asserts that `fn` throws a JS Error with this `code` and a message matching `re`. */
function throwsCode(fn, code, re) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof Error, `not an Error: ${e}`);
    assert.equal(e.code, code, `code of: ${e.message}`);
    if (re) assert.match(e.message, re);
    return true;
  });
}

/** A queue with its routine batch schedule started at t = 0. */
function started(config) {
  const q = new SyncQueue(config);
  assert.deepEqual(q.poll(0), []);
  return q;
}

/** Every field of a request as `agent/block.field=value`. */
const fields = (r) => r.changes.map((c) => `${c.agent}/${c.block}.${c.field}=${JSON.stringify(c.value)}`);

describe("constructor and settings", () => {
  test("no config, an empty object and undefined keys all take the defaults", () => {
    for (const cfg of [undefined, null, {}, { debounce: undefined }]) {
      const q = new SyncQueue(cfg);
      assert.equal(q.metrics().requestsBatch, 0);
      assert.equal(q.isIdle(), true);
    }
  });

  test("an out-of-range setting is refused with its JavaScript name and the reason", () => {
    throwsCode(() => new SyncQueue({ debounce: -1 }), "Config", /invalid setting `debounce`: must not be negative/);
    throwsCode(() => new SyncQueue({ budgetPerMinute: 501 }), "Config", /`budgetPerMinute`.*500/);
    throwsCode(() => new SyncQueue({ freshness: 2 }), "Config", /`freshness`: must not be below debounce_s/);
    throwsCode(() => new SyncQueue({ routineShare: 1.5 }), "Config", /`routineShare`/);
    throwsCode(() => new SyncQueue({ batchInterval: NaN }), "Config", /`batchInterval`: is NaN/);
    throwsCode(() => new SyncQueue({ batchRequestsPerPoll: 0 }), "Config", /`batchRequestsPerPoll`: must be at least 1/);
  });

  test("a setting of the wrong type, an unknown key or a bad target is refused by name", () => {
    throwsCode(() => new SyncQueue({ debounce: "5" }), "BadInput", /setting `debounce`: must be a number, got a string/);
    throwsCode(() => new SyncQueue({ debounse: 5 }), "BadInput", /setting `debounse`: is not a setting \(known: debounce, /);
    throwsCode(() => new SyncQueue({ target: "http" }), "BadInput", /setting `target`: must be "batch" or "letta", got "http"/);
    throwsCode(() => new SyncQueue({ chatMaxMessages: 2.5 }), "BadInput", /`chatMaxMessages`: must be a whole number/);
    throwsCode(() => new SyncQueue({ seed: -1 }), "BadInput", /`seed`/);
    throwsCode(() => new SyncQueue(42), "BadInput", /config: must be an object of settings, got a number/);
    throwsCode(() => new SyncQueue([1]), "BadInput", /got an array/);
  });

  test("the seed may be a BigInt beyond 2^53, and the Letta target is accepted", () => {
    const q = new SyncQueue({ seed: 2n ** 63n, target: "letta" });
    q.setLocation(0, "npc-1", "gate");
    throwsCode(() => new SyncQueue({ seed: 2n ** 64n }), "BadInput", /`seed`: must be a BigInt from 0 to 2\^64 - 1/);
  });
});

describe("change calls, poll and requests", () => {
  test("normal changes wait for the routine batch and coalesce to the latest value", () => {
    const q = started();
    const h1 = q.setLocation(1, "npc-1", "plaza");
    const h2 = q.setLocation(2, "npc-1", "market");
    assert.ok(h2.seq > h1.seq);
    q.setDescription(2, "npc-1", "buying bread");
    q.set(2, { agent: "npc-2", block: "persona", field: "title", value: "Smith" });
    assert.deepEqual(q.poll(29.9), []);
    const [r] = q.poll(30);
    assert.equal(r.kind, "batch");
    assert.equal(r.agent, null);
    assert.deepEqual(r.messages, []);
    assert.equal(r.calls, 1);
    assert.equal(r.attempt, 1);
    assert.ok(r.bodyBytes > 0);
    assert.deepEqual(fields(r), [
      'npc-1/status.location="market"',
      'npc-1/status.description="buying bread"',
      'npc-2/persona.title="Smith"',
    ]);
    assert.deepEqual(r.changes[0], { agent: "npc-1", block: "status", field: "location", value: "market", seq: h2.seq, group: null });
    assert.equal(q.metrics().coalesced, 1);
    q.ack(r.id);
    assert.equal(q.isIdle(), true);
  });

  test("values of every type go out as given; null clears a field", () => {
    const q = started();
    q.set(1, { agent: "a", block: "status", field: "n", value: 12.75 });
    q.set(1, { agent: "a", block: "status", field: "b", value: false });
    q.set(1, { agent: "a", block: "status", field: "s", value: "x" });
    const [r] = q.poll(30);
    q.ack(r.id);
    q.set(31, { agent: "a", block: "status", field: "s", value: null });
    const [r2] = q.poll(60);
    assert.deepEqual(fields(r), ["a/status.n=12.75", "a/status.b=false", 'a/status.s="x"']);
    assert.deepEqual(fields(r2), ["a/status.s=null"]);
  });

  test("a critical health drop goes out at once in an urgent request and starts combat", () => {
    const q = started();
    q.setHealth(0, "npc-1", 100);
    q.ack(q.poll(30)[0].id);
    q.setHealth(31, "npc-1", 70);
    const [r] = q.poll(31);
    assert.equal(r.kind, "urgent");
    assert.deepEqual(fields(r), ["npc-1/status.health=70"]);
    q.ack(r.id);
    // In combat the freshness threshold is 1 s.
    q.setLocation(31, "npc-1", "arena");
    const d = q.decide(32.5, "npc-1");
    assert.deepEqual(d, { kind: "syncing", staleness: 1.5, threshold: 1 });
    const [sync] = q.poll(32.5);
    assert.equal(sync.kind, "urgent");
    q.ack(sync.id);
    assert.deepEqual(q.decide(32.6, "npc-1"), { kind: "fresh", staleness: 0 });
    assert.equal(q.metrics().decisionsSynced, 1);
  });

  test("entering and leaving Combat are critical", () => {
    const q = started();
    q.setState(1, "npc-1", "Combat");
    const [r] = q.poll(1);
    assert.equal(r.kind, "urgent");
    q.ack(r.id);
    q.setState(10, "npc-1", "Idle");
    const [r2] = q.poll(10);
    assert.equal(r2.kind, "urgent");
    assert.deepEqual(fields(r2), ['npc-1/status.state="Idle"']);
  });

  test("a dependent change is never sent before its dependency", () => {
    const q = started();
    const moved = q.set(1, { agent: "npc-1", block: "status", field: "location", value: "cave" });
    q.set(1, { agent: "npc-1", block: "status", field: "torch", value: true, priority: "critical", after: [moved] });
    const [r] = q.poll(1);
    const f = fields(r);
    assert.ok(f.indexOf('npc-1/status.location="cave"') < f.indexOf("npc-1/status.torch=true"), f.join());
  });

  test("atomic: one request, in order, one group; refused groups change nothing", () => {
    const q = started();
    const hs = q.atomic(1, [
      { agent: "npc-1", block: "status", field: "location", value: "tower" },
      { agent: "npc-1", block: "status", field: "state", value: "Guarding" },
      { agent: "npc-2", block: "group_members", field: "npc-1.is_present", value: true, priority: "high" },
    ]);
    assert.equal(hs.length, 3);
    assert.deepEqual(hs.map((h) => h.seq), [hs[0].seq, hs[0].seq + 1, hs[0].seq + 2]);
    const before = q.metrics();
    throwsCode(() => q.atomic(1, []), "BadGroup", /atomic group rejected: it has no change/);
    throwsCode(
      () => q.atomic(1, [
        { agent: "npc-1", block: "status", field: "x", value: 1 },
        { agent: "npc-1", block: "status", field: "x", value: 2 },
      ]),
      "BadGroup",
      /sets status.x of agent 'npc-1' a second time/,
    );
    throwsCode(() => q.atomic(1, "no"), "BadInput", /changes: must be a list, got a string/);
    throwsCode(() => q.atomic(1, [{ agent: "a", block: "b" }]), "BadInput", /changes\[0\]: missing field `field`/);
    assert.deepEqual(q.metrics(), before);
    const [r] = q.poll(2);
    assert.deepEqual(fields(r), [
      'npc-1/status.location="tower"',
      'npc-1/status.state="Guarding"',
      "npc-2/group_members.npc-1.is_present=true",
    ]);
    const g = r.changes[0].group;
    assert.equal(typeof g, "number");
    assert.ok(r.changes.every((c) => c.group === g));
  });

  test("joinGroup takes ordered pairs or an object; leaveGroup clears every field of the member", () => {
    const q = started();
    q.joinGroup(1, "npc-1", "player_7", [["role", "tank"], ["level", 12]]);
    q.joinGroup(1, "npc-1", "player_8", { role: "healer" });
    q.joinGroup(1, "npc-1", "player_9");
    const [r] = q.poll(2);
    assert.deepEqual(fields(r), [
      "npc-1/group_members.player_7.is_present=true",
      'npc-1/group_members.player_7.role="tank"',
      "npc-1/group_members.player_7.level=12",
      "npc-1/group_members.player_8.is_present=true",
      'npc-1/group_members.player_8.role="healer"',
      "npc-1/group_members.player_9.is_present=true",
    ]);
    q.ack(r.id);
    q.leaveGroup(3, "npc-1", "player_7");
    const [r2] = q.poll(4);
    assert.deepEqual(fields(r2), [
      "npc-1/group_members.player_7.is_present=null",
      "npc-1/group_members.player_7.role=null",
      "npc-1/group_members.player_7.level=null",
    ]);
    throwsCode(() => q.joinGroup(5, "npc-1", "p", 7), "BadInput", /fields: must be a list of \[field, value\] pairs or an object, got a number/);
    throwsCode(() => q.joinGroup(5, "npc-1", "p", [["a", {}]]), "BadInput", /fields\[0\]/);
    throwsCode(() => q.leaveGroup(5, "npc-1", ""), "BadString", /group member/);
  });

  test("tool results: high priority within 1 s, critical at once", () => {
    const q = started();
    q.toolResult(1, "npc-1", "inventory", "sword", "sharp");
    assert.deepEqual(q.poll(1.5), []);
    q.toolResult(1.5, "npc-2", "quest", "stage", 3, true);
    const [urgent] = q.poll(1.5);
    assert.equal(urgent.kind, "urgent");
    assert.ok(fields(urgent).includes("npc-2/quest.stage=3"));
  });
});

describe("outcomes", () => {
  test("fail with retryAfter holds routine traffic, not a new critical change; fail without it backs off; the newest value is resent", () => {
    const q = started();
    q.toolResult(1, "npc-1", "status", "quest", "started", true);
    const [r] = q.poll(1);
    q.fail(1.25, r.id, 2);
    q.toolResult(2, "npc-1", "status", "quest", "done", true);
    // A 429 asks to slow down: a new critical change still goes (paced), with the newest value.
    const [again] = q.poll(2);
    assert.deepEqual(fields(again), ['npc-1/status.quest="done"']);
    q.fail(2.5, again.id);
    assert.deepEqual(q.poll(3), []);
    const [third] = q.poll(10);
    assert.equal(third.attempt, 3);
    q.ack(third.id);
    assert.equal(q.metrics().failures, 2);
  });

  test("ack merges the backend's confirmed fields: the same value later sends nothing", () => {
    const q = started();
    q.setLocation(1, "npc-1", "gate");
    const [r] = q.poll(30);
    q.ack(r.id, [{ agent: "npc-1", block: "status", field: "mood", value: "angry", seq: 1 }]);
    q.set(31, { agent: "npc-1", block: "status", field: "mood", value: "angry" });
    assert.deepEqual(q.poll(60), []);
    assert.equal(q.isIdle(), true);
  });

  test("unknown or already reported requests and bad arguments are refused", () => {
    const q = started();
    q.setHealth(0, "a", 100);
    const [r] = q.poll(30);
    throwsCode(() => q.ack(99), "UnknownRequest", /request #99 is not in flight/);
    throwsCode(() => q.fail(30, 99), "UnknownRequest");
    throwsCode(() => q.fail(30, r.id, -1), "BadRetryAfter", /`retry_after`/);
    throwsCode(() => q.ack(1.5), "BadInput", /requestId: must be the whole-number id/);
    throwsCode(() => q.ack(r.id, [{ agent: "a", block: "status", field: "x", value: 1 }]), "BadInput", /confirmed\[0\]: missing field `seq`/);
    // Confirmed state newer than any seq this queue issued (an earlier run's) is taken in.
    q.ack(r.id, [{ agent: "a", block: "status", field: "x", value: 1, seq: 10 ** 9 }]);
    throwsCode(() => q.ack(r.id), "UnknownRequest");
  });
});

describe("decisions, chat, removal, events, metrics", () => {
  test("chat leaves as one inference request per agent", () => {
    const q = started();
    q.chat(0, "npc-1", "player_1", "hello");
    q.chat(0.25, "npc-1", "player_2", "hi there");
    assert.deepEqual(q.poll(0.5), []);
    const [r] = q.poll(0.75);
    assert.equal(r.kind, "inference");
    assert.equal(r.agent, "npc-1");
    assert.deepEqual(r.messages, [
      { sender: "player_1", text: "hello", at: 0 },
      { sender: "player_2", text: "hi there", at: 0.25 },
    ]);
    assert.deepEqual(r.changes, []);
    throwsCode(() => q.chat(1, "npc-1", "", "x"), "BadString", /chat sender/);
    throwsCode(() => q.chat(1, "npc-1", "p", "x".repeat(3000)), "BadString", /chat text \(3000 bytes\): longer than the 2 KiB limit/);
  });

  test("removeAgent reports what was dropped and releases dependents; an unknown id is refused", () => {
    const q = started();
    const dock = q.set(1, { agent: "npc-3", block: "status", field: "location", value: "dock" });
    const follows = q.set(1, { agent: "npc-1", block: "status", field: "follows", value: "npc-3", priority: "high", after: [dock] });
    q.chat(1, "npc-3", "p", "bye");
    q.removeAgent("npc-3");
    const events = q.drainEvents();
    assert.deepEqual(events, [
      { type: "dependencyReleased", dependent: follows, dependency: dock },
      { type: "agentRemoved", agent: "npc-3", pendingFields: 1, chatMessages: 1 },
    ]);
    assert.deepEqual(q.drainEvents(), []);
    assert.equal(q.metrics().agentsRemoved, 1);
    throwsCode(() => q.removeAgent("npc-3"), "UnknownAgent", /agent 'npc-3' is not known to this queue/);
    throwsCode(() => q.removeAgent("never"), "UnknownAgent");
    throwsCode(
      () => q.set(2, { agent: "npc-1", block: "status", field: "x", value: 1, after: [dock] }),
      "DependencyRemoved",
      /change #1 of agent 'npc-3', which was removed/,
    );
    throwsCode(() => q.set(2, { agent: "npc-1", block: "status", field: "x", value: 1, after: [{ ...dock, blockSym: 999 }] }), "UnknownChange");
    throwsCode(() => q.set(2, { agent: "npc-1", block: "status", field: "x", value: 1, after: [{ seq: 1 }] }), "BadInput", /missing field/);
  });

  test("a trimmed atomic group is reported", () => {
    const q = started();
    q.atomic(1, [
      { agent: "npc-3", block: "status", field: "state", value: "Sailing" },
      { agent: "npc-1", block: "status", field: "boat", value: "ready" },
    ]);
    q.removeAgent("npc-3");
    const [trimmed] = q.drainEvents();
    assert.equal(trimmed.type, "groupTrimmed");
    assert.equal(trimmed.agent, "npc-3");
    assert.equal(typeof trimmed.group, "number");
  });

  test("metrics count what happened", () => {
    const q = started();
    q.setLocation(1, "a", "x");
    q.setLocation(2, "a", "y");
    q.chat(2, "a", "p", "hi");
    const m = q.metrics();
    assert.deepEqual(Object.keys(m), [
      "requestsBatch", "requestsUrgent", "requestsInference", "calls", "callsLastMinute", "changesIn",
      "changesSent", "coalesced", "queueDepth", "inFlight", "failures", "decisionsFresh", "decisionsSynced",
      "staleness", "stalenessCombat", "criticalLatency", "chatMessages", "agentsRemoved",
    ]);
    assert.equal(m.changesIn, 2);
    assert.equal(m.coalesced, 1);
    assert.equal(m.queueDepth, 1);
    assert.equal(m.chatMessages, 1);
    assert.deepEqual(m.staleness, { count: 0, p50: 0, p99: 0, max: 0 });
    q.poll(3);
    const m2 = q.metrics();
    assert.equal(m2.requestsInference, 1);
    assert.equal(m2.inFlight, 1);
    assert.equal(m2.calls, 1);
  });
});

describe("bad input never changes the queue", () => {
  test("each refused call names what is wrong and leaves the metrics as they were", () => {
    const q = started();
    q.setLocation(5, "npc-1", "gate");
    const before = q.metrics();
    throwsCode(() => q.setLocation(4, "npc-1", "late"), "TimeWentBackwards", /`now` went backwards: 4 is before 5/);
    throwsCode(() => q.setLocation(NaN, "npc-1", "x"), "BadTime", /`now` must be a finite time/);
    throwsCode(() => q.setHealth(6, "npc-1", NaN), "BadNumber", /agent 'npc-1', field `status.health`/);
    throwsCode(() => q.setHealth(6, "npc-1", -5), "BadNumber");
    throwsCode(() => q.set(6, { agent: "npc-1", block: "status", field: "x", value: Infinity }), "BadNumber", /status.x/);
    throwsCode(() => q.setLocation(6, 7, "x"), "BadInput", /agent: must be a string, got a number/);
    throwsCode(() => q.setLocation(6, "npc-1", null), "BadInput", /location: must be a string, got null/);
    throwsCode(() => q.setLocation(6, "", "x"), "BadString", /agent id \(0 bytes\): must not be empty/);
    throwsCode(() => q.set(6, { agent: "npc-1", block: "", field: "x", value: 1 }), "BadString", /block label/);
    throwsCode(() => q.set(6, { agent: "npc-1", block: "b", field: "x", value: {} }), "BadInput", /change: .*a number, a string, a boolean or null/);
    throwsCode(() => q.set(6, { agent: "npc-1", block: "b", field: "x", value: 1, colour: "red" }), "BadInput", /change: unknown key `colour` \(known: agent, block, field, value, priority, after\)/);
    throwsCode(() => q.set(6, { agent: "npc-1", block: "b", field: "x", value: 1, priority: "urgent" }), "BadInput", /unknown variant `urgent`/);
    throwsCode(() => q.set(6, "not a change"), "BadInput", /change:/);
    throwsCode(() => q.toolResult(6, "npc-1", "b", 3, "v"), "BadInput", /field: must be a string/);
    throwsCode(() => q.decide(4, "npc-1"), "TimeWentBackwards");
    throwsCode(() => q.poll(-1), "BadTime");
    assert.deepEqual(q.metrics(), before);
    const [r] = q.poll(30);
    assert.deepEqual(fields(r), ['npc-1/status.location="gate"']);
  });
});
