// The differential traces replayed in Node through pkg/node. Each output is written to
// target/traces/<name>.node.out; `./build.sh test` then compares it byte for byte with
// the native replay's (tests/traces.rs) and, once it exists, the Luau one.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { root } from "./load.mjs";
import { replay, num, str } from "./replay.mjs";

const traces = path.join(root, "tests/traces");
const outDir = path.join(root, "target/traces");
const names = fs
  .readdirSync(traces)
  .filter((f) => f.endsWith(".jsonl"))
  .map((f) => f.slice(0, -".jsonl".length))
  .sort();

test("the trace set is there", () => {
  assert.ok(names.length >= 6, `traces found: ${names}`);
});

test("FORMAT.md number and string rules", () => {
  assert.equal(num(0), "0");
  assert.equal(num(70), "70");
  assert.equal(num(-3), "-3");
  assert.equal(num(0.5), "0x3fe0000000000000");
  assert.equal(num(-0), "0x8000000000000000");
  assert.equal(num(2 ** 53), "9007199254740992");
  assert.equal(num(2 ** 54), "0x4350000000000000");
  assert.equal(str('a"b\\c\n\x7fé'), '"a\\"b\\\\c\\u000a\\u007fé"');
});

for (const name of names) {
  test(`trace ${name} replays the same twice and its output is written`, () => {
    const text = fs.readFileSync(path.join(traces, `${name}.jsonl`), "utf8");
    const first = replay(name, text);
    const second = replay(name, text);
    assert.equal(first.out, second.out);
    assert.ok(first.out.startsWith("#1 config\nok\n"), first.out.slice(0, 40));
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(path.join(outDir, `${name}.node.out`), first.out);
  });
}

test("combat trace: the 30-point drop leaves at once in an urgent request", () => {
  const text = fs.readFileSync(path.join(traces, "combat.jsonl"), "utf8");
  const { requests } = replay("combat", text);
  const urgent = requests.find((r) => r.changes.some((c) => c.field === "health" && c.value === 70));
  assert.equal(urgent.kind, "urgent");
  assert.equal(urgent.changes[0].agent, "npc-1");
});

test("chat trace: one inference request carries both messages, in order", () => {
  const text = fs.readFileSync(path.join(traces, "chat.jsonl"), "utf8");
  const { requests } = replay("chat", text);
  const first = requests.find((r) => r.kind === "inference");
  assert.equal(first.agent, "npc-1");
  assert.deepEqual(
    first.messages.map((m) => m.text),
    ["hello", "hi there"],
  );
});
