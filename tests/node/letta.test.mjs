// pkg/node on Letta's API: the core's rendered block writes, block limits, blocks read
// from Letta, flush, and Retry-After (issue 8 item 2 and the core's ABI gaps).
import { test } from "node:test";
import assert from "node:assert/strict";
import { SyncQueue } from "./load.mjs";

function throwsCode(fn, code, re) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof Error, `not an Error: ${e}`);
    assert.equal(e.code, code, `code of: ${e.message}`);
    if (re) assert.match(e.message, re);
    return true;
  });
}

test("a Letta request carries each block's whole text; the batch endpoint none", () => {
  const q = new SyncQueue({ target: "letta" });
  q.setLocation(0, "npc-1", "tavern");
  q.setHealth(0, "npc-1", 62.5);
  const [r] = q.flush(0);
  assert.deepEqual(r.blocks, [{ agent: "npc-1", label: "status", value: 'health: 62.5\nlocation: "tavern"' }]);
  q.ack(r.id);
  q.setHealth(1, "npc-1", 60);
  const [r2] = q.flush(1);
  assert.equal(r2.changes.length, 1);
  assert.equal(r2.blocks[0].value, 'health: 60\nlocation: "tavern"', "the acknowledged location stays");
  const b = new SyncQueue({ target: "batch" });
  b.setLocation(0, "npc-1", "tavern");
  assert.deepEqual(b.flush(0)[0].blocks, []);
});

test("block limits: settings checked, a change over the limit refused naming agent, block and limit", () => {
  throwsCode(() => new SyncQueue({ defaultBlockLimit: 0 }), "Config", /`defaultBlockLimit`/);
  throwsCode(() => new SyncQueue({ blockLimits: { status: 0 } }), "Config", /`blockLimits`/);
  throwsCode(() => new SyncQueue({ blockLimits: [] }), "BadInput", /blockLimits/);
  throwsCode(() => new SyncQueue({ blockLimits: { status: "x" } }), "BadInput", /blockLimits\.status/);
  const q = new SyncQueue({ target: "letta", blockLimits: { status: 20 } });
  q.setLocation(0, "npc-1", "cave");
  throwsCode(
    () => q.setDescription(0, "npc-1", "far too long for it"),
    "BlockText",
    /^agent 'npc-1': block `status` renders to 51 characters, over its limit of 20$/,
  );
  assert.equal(q.metrics().changesIn, 1, "nothing applied");
});

test("blocks read from Letta: writes wait, Letta's fields are acknowledged, unreadable lines reported", () => {
  const q = new SyncQueue({ target: "letta" });
  q.awaitBlock("npc-1", "status");
  q.setLocation(0, "npc-1", "tavern");
  q.setHealth(0, "npc-1", 80);
  assert.deepEqual(q.flush(0), [], "the writes wait for the read");
  assert.equal(q.loadBlock(0.5, "npc-1", "status", 'location: "tavern"\nmood: "calm"\nfree text'), 1);
  assert.deepEqual(q.drainEvents(), [
    {
      type: "blockUnreadable",
      agent: "npc-1",
      block: "status",
      lines: [{ line: 3, text: "free text", reason: "not a `name: value` line" }],
    },
  ]);
  const [r] = q.flush(0.5);
  assert.deepEqual(r.changes.map((c) => c.field), ["health"], "the location equals Letta's");
  assert.equal(r.blocks[0].value, 'health: 80\nlocation: "tavern"\nmood: "calm"');
  throwsCode(() => q.loadBlock(0.6, "npc-1", "status", ""), "BlockBusy", /write of it is in flight/);
  throwsCode(() => q.loadBlock(0.6, "npc-1", "", ""), "BadString");
});

test("flush sends what poll holds back; Retry-After must be given as a number of 0 or more", () => {
  const q = new SyncQueue();
  q.setLocation(0, "npc-1", "tavern");
  q.chat(0, "npc-1", "p1", "hi");
  assert.deepEqual(q.poll(0.1), []);
  const rs = q.flush(0.1);
  assert.deepEqual(rs.map((r) => r.kind), ["inference", "batch"]);
  throwsCode(() => q.fail(0.2, rs[1].id, -1), "BadRetryAfter", /got -1/);
  q.fail(0.2, rs[1].id);
  assert.equal(q.flush(0.2).length, 1, "the retry goes without its backoff");
});

test("block reads are counted in the budget", () => {
  const q = new SyncQueue({ target: "letta", budgetPerMinute: 4, budgetBurst: 4, routineShare: 0.5 });
  assert.deepEqual([1, 2, 3].map(() => q.takeReadCall(0)), [true, true, false]);
  assert.equal(q.metrics().calls, 2);
  throwsCode(() => q.takeReadCall(NaN), "BadTime");
});
