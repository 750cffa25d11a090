// The Node replayer of the differential traces (tests/traces/FORMAT.md): replays a trace
// through pkg/node's SyncQueue and renders the canonical output. Kept apart from the test
// file so that it reads as the format's second implementation, next to tests/traces.rs.
import { SyncQueue } from "./load.mjs";

/** FORMAT.md's trace config keys (Rust `Config` names) -> SyncQueueConfig keys. */
const CONFIG_KEYS = {
  debounce_s: "debounce",
  combat_debounce_s: "combatDebounce",
  freshness_s: "freshness",
  combat_freshness_s: "combatFreshness",
  batch_interval_s: "batchInterval",
  high_priority_delay_s: "highPriorityDelay",
  health_critical_points: "healthCriticalPoints",
  health_notable_points: "healthNotablePoints",
  combat_exit_s: "combatExit",
  budget_per_minute: "budgetPerMinute",
  routine_share: "routineShare",
  budget_burst: "budgetBurst",
  max_agent_blocks_per_request: "maxAgentBlocksPerRequest",
  max_request_bytes: "maxRequestBytes",
  batch_requests_per_poll: "batchRequestsPerPoll",
  retry_base_s: "retryBase",
  retry_max_s: "retryMax",
  retry_jitter: "retryJitter",
  seed: "seed",
  chat_window_s: "chatWindow",
  chat_max_wait_s: "chatMaxWait",
  chat_max_messages: "chatMaxMessages",
  target: "target",
  default_block_limit: "defaultBlockLimit",
  block_limits: "blockLimits",
};

/** FORMAT.md's number rule. */
export function num(x) {
  if (Number.isFinite(x) && Number.isInteger(x) && Math.abs(x) <= 2 ** 53 && !Object.is(x, -0)) {
    return String(x);
  }
  const v = new DataView(new ArrayBuffer(8));
  v.setFloat64(0, x);
  return "0x" + v.getBigUint64(0).toString(16).padStart(16, "0");
}

/** FORMAT.md's string rule. */
export function str(s) {
  let o = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (ch === "\\") o += "\\\\";
    else if (ch === '"') o += '\\"';
    else if (c < 0x20 || c === 0x7f) o += "\\u00" + c.toString(16).padStart(2, "0");
    else o += ch;
  }
  return o + '"';
}

function value(v) {
  if (v === null) return "null";
  if (typeof v === "number") return num(v);
  if (typeof v === "string") return str(v);
  return String(v);
}

function latency(l) {
  return `${l.count}/${num(l.p50)}/${num(l.p99)}/${num(l.max)}`;
}

/** A broken trace (not an output): stop with the line. */
class TraceError extends Error {}

/**
 * Replays one trace (its text) and returns the canonical output (a string) and, for
 * hand checks, every request emitted.
 */
export function replay(name, text) {
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  let q = null;
  const labels = new Map();
  const outstanding = new Set();
  const requests = [];
  let out = "";
  const w = (s) => {
    out += s + "\n";
  };
  const broken = (line, why) => new TraceError(`${name}:${line}: ${why}`);

  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    const j = JSON.parse(lines[i]);
    const op = j.op;
    if (line === 1 && op !== "config") throw broken(1, "the first line must be `config`");
    w(`#${line} ${op}`);
    const deps = (after) =>
      (after ?? []).map((l) => {
        if (!labels.has(l)) throw broken(line, `unknown label \`${l}\``);
        return labels.get(l);
      });
    const remember = (entry, handle) => {
      if (entry.as !== undefined) labels.set(entry.as, handle);
    };
    const selected = () => {
      if (j.request === "all") return [...outstanding].sort((a, b) => a - b);
      if (Number.isInteger(j.request)) return [j.request];
      throw broken(line, '`request` must be an id or "all"');
    };
    let stop = false;
    try {
      switch (op) {
        case "config": {
          const cfg = {};
          for (const [k, v] of Object.entries(j.config ?? {})) {
            if (!(k in CONFIG_KEYS)) throw broken(1, `unknown setting \`${k}\``);
            // Ordered pairs in the trace, an object of label -> limit in the package.
            cfg[CONFIG_KEYS[k]] = k === "block_limits" ? Object.fromEntries(v) : v;
          }
          try {
            q = new SyncQueue(cfg);
          } catch (e) {
            stop = true;
            throw e;
          }
          w("ok");
          break;
        }
        case "note":
          break;
        case "set": {
          const h = q.set(j.now, {
            agent: j.agent,
            block: j.block,
            field: j.field,
            value: j.value,
            priority: j.priority ?? "normal",
            after: deps(j.after),
          });
          remember(j, h);
          w(`ok seq=${h.seq}`);
          break;
        }
        case "location":
        case "state":
        case "health": {
          const call = { location: "setLocation", state: "setState", health: "setHealth" }[op];
          const h = q[call](j.now, j.agent, j.value);
          remember(j, h);
          w(`ok seq=${h.seq}`);
          break;
        }
        case "join": {
          const h = q.joinGroup(j.now, j.agent, j.member, j.fields);
          remember(j, h);
          w(`ok seq=${h.seq}`);
          break;
        }
        case "leave": {
          const h = q.leaveGroup(j.now, j.agent, j.member);
          remember(j, h);
          w(`ok seq=${h.seq}`);
          break;
        }
        case "tool": {
          const h = q.toolResult(j.now, j.agent, j.block, j.field, j.value, j.critical);
          remember(j, h);
          w(`ok seq=${h.seq}`);
          break;
        }
        case "atomic": {
          const changes = j.changes.map((c) => ({
            agent: c.agent,
            block: c.block,
            field: c.field,
            value: c.value,
            priority: c.priority ?? "normal",
            after: deps(c.after),
          }));
          const hs = q.atomic(j.now, changes);
          j.changes.forEach((c, k) => remember(c, hs[k]));
          w(`ok seq=${hs.map((h) => h.seq).join(",")}`);
          break;
        }
        case "await":
          q.awaitBlock(j.agent, j.block);
          w("ok");
          break;
        case "read":
          w(`ok unreadable=${q.loadBlock(j.now, j.agent, j.block, j.text)}`);
          break;
        case "poll":
        case "flush": {
          const rs = op === "poll" ? q.poll(j.now) : q.flush(j.now);
          w(`requests n=${rs.length}`);
          for (const r of rs) {
            requests.push(r);
            outstanding.add(r.id);
            const agent = r.agent === null ? "-" : str(r.agent);
            w(`request id=${r.id} kind=${r.kind} agent=${agent} changes=${r.changes.length} messages=${r.messages.length}`);
            for (const c of r.changes) {
              const group = c.group === null ? "-" : String(c.group);
              w(`change agent=${str(c.agent)} block=${str(c.block)} field=${str(c.field)} value=${value(c.value)} seq=${c.seq} group=${group}`);
            }
            for (const m of r.messages) w(`message sender=${str(m.sender)} text=${str(m.text)}`);
            for (const b of r.blocks) w(`block agent=${str(b.agent)} label=${str(b.label)} value=${str(b.value)}`);
          }
          break;
        }
        case "ack":
        case "fail": {
          for (const id of selected()) {
            if (op === "ack") q.ack(id, j.confirmed);
            else q.fail(j.now, id, j.retry_after ?? undefined);
            outstanding.delete(id);
            w(`${op} id=${id}`);
          }
          break;
        }
        case "decide": {
          const d = q.decide(j.now, j.agent);
          if (d.kind === "fresh") w(`fresh staleness=${num(d.staleness)}`);
          else w(`syncing staleness=${num(d.staleness)} threshold=${num(d.threshold)}`);
          break;
        }
        case "chat":
          q.chat(j.now, j.agent, j.sender, j.text);
          w("ok");
          break;
        case "remove":
          q.removeAgent(j.agent);
          w("ok");
          break;
        case "metrics": {
          const m = q.metrics();
          w(
            `metrics requests_batch=${m.requestsBatch} requests_urgent=${m.requestsUrgent} requests_inference=${m.requestsInference} calls=${m.calls} calls_last_minute=${m.callsLastMinute} changes_in=${m.changesIn} changes_sent=${m.changesSent} coalesced=${m.coalesced} queue_depth=${m.queueDepth} in_flight=${m.inFlight} failures=${m.failures} decisions_fresh=${m.decisionsFresh} decisions_synced=${m.decisionsSynced} staleness=${latency(m.staleness)} staleness_combat=${latency(m.stalenessCombat)} critical_latency=${latency(m.criticalLatency)} chat_messages=${m.chatMessages} agents_removed=${m.agentsRemoved}`,
          );
          break;
        }
        default:
          throw broken(line, `unknown op \`${op}\``);
      }
    } catch (e) {
      if (e instanceof TraceError || typeof e.code !== "string") throw e;
      w(`error ${e.code}`);
    }
    if (stop) break;
    for (const e of q.drainEvents()) {
      if (e.type === "agentRemoved") {
        w(`event agent_removed agent=${str(e.agent)} pending_fields=${e.pendingFields} chat_messages=${e.chatMessages}`);
      } else if (e.type === "dependencyReleased") {
        w(`event dependency_released dependent=${e.dependent.seq} dependency=${e.dependency.seq}`);
      } else if (e.type === "blockUnreadable") {
        w(`event block_unreadable agent=${str(e.agent)} block=${str(e.block)} lines=${e.lines.length} first=${e.lines[0]?.line ?? 0}`);
      } else {
        w(`event group_trimmed group=${e.group} agent=${str(e.agent)}`);
      }
    }
  }
  return { out, requests };
}
