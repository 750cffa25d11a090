// The package as a Node developer installs it: `npm install <path to pkg/node>`, then
// `require("npc-sync-node")`, with TypeScript declarations and no `any` in them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { root } from "./load.mjs";

const pkg = path.join(root, "pkg/node");

test("npm install of pkg/node, then require by name, gives a working SyncQueue", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "npc-sync-node-"));
  try {
    fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "game-server", private: true }));
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--offline", pkg], { cwd: dir, stdio: "pipe" });
    const script = `
      const { SyncQueue } = require("npc-sync-node");
      const q = new SyncQueue({ target: "batch" });
      q.setHealth(0, "npc-1", 100);
      q.setHealth(1, "npc-1", 70);
      console.log(JSON.stringify(q.poll(1).map((r) => r.kind)));`;
    const out = execFileSync(process.execPath, ["-e", script], { cwd: dir, encoding: "utf8" });
    assert.equal(out.trim(), '["urgent"]');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("the .d.ts declares the config, change, request and metrics types, and no `any`", () => {
  const dts = fs.readFileSync(path.join(pkg, JSON.parse(fs.readFileSync(path.join(pkg, "package.json"))).types), "utf8");
  const code = dts.replace(/\/\*[\s\S]*?\*\//g, ""); // comments may say "any"
  assert.doesNotMatch(code, /\bany\b/);
  for (const t of ["SyncQueueConfig", "FieldChange", "ChangeHandle", "SyncRequest", "SentChange", "Decision", "Metrics", "QueueEvent", "ConfirmedField"]) {
    assert.match(code, new RegExp(`export (interface|type) ${t}\\b`), t);
  }
  assert.match(code, /constructor\(config\?: SyncQueueConfig \| null\);/);
  assert.match(code, /poll\(now: number\): SyncRequest\[\];/);
  assert.match(code, /set\(now: number, change: FieldChange\): ChangeHandle;/);
  assert.match(code, /metrics\(\): Metrics;/);
});
