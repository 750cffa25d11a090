//! The ABI scenario language shared by the Luau facade's identity tests: one call per
//! line (`op now args...`, names interned on first use on both sides), run by the same
//! small interpreter written twice, once in Luau over the generated `pkg/roblox` exports
//! ([`DRIVER`]) and once in Rust over the native [`Facade`] ([`native`]); each prints
//! every result, error message and decoded output record, so the two texts must be equal.
//!
//! Ops: `set now agent block field num|bool|text|sym|clear value priority`,
//! `health now agent hp`, `state now agent name`, `poll now`, `ackall`,
//! `failall now retry_after` (negative: none), `begin`, `commit now`,
//! `after now seq agent block field` (the next change depends on that change handle),
//! `join now agent member field number`, `leave now agent member`, `chat now agent from text`,
//! `decide now agent`, `remove agent`, `events`, `metrics`.

use npc_sync_luau::{Facade, CHANGE_RECORD, EVENT_RECORD, MESSAGE_RECORD, REQUEST_RECORD};

/// The Luau side: the same interpreter over the exports.
pub const DRIVER: &str = r#"
local Core, SCENARIO = ...
local X = Core.instantiate({}).exports
local mem = X.memory
local out = {}
local function emit(s) table.insert(out, s) end
assert(X.nsq_init() == 0)
local scratch = X.nsq_scratch_ptr()
local hdr = X.nsq_out_ptr()
local function put(s) buffer.writestring(mem.buffer, scratch, s) return #s end
local syms, agents, slots = {}, {}, {}
local function sym(s)
	if syms[s] == nil then syms[s] = X.nsq_intern(put(s)) end
	return syms[s]
end
local function agent(id)
	if agents[id] == nil then agents[id] = X.nsq_agent(sym(id)) end
	return agents[id]
end
local function slot(a, b, f)
	local k = a .. "/" .. b .. "/" .. f
	if slots[k] == nil then slots[k] = X.nsq_slot(agent(a), sym(b), sym(f)) end
	return slots[k]
end
local function text(sym) local n = X.nsq_sym_text(sym) return buffer.readstring(mem.buffer, scratch, n) end
local bits = buffer.create(8)
local function num(x)
	if x == math.floor(x) and math.abs(x) < 1e15 then return string.format("%d", x) end
	buffer.writef64(bits, 0, x)
	return string.format("0x%08x%08x", buffer.readu32(bits, 4), buffer.readu32(bits, 0))
end
local function result(r)
	if r < 0 then
		return "err " .. num(-r) .. " " .. buffer.readstring(mem.buffer, X.nsq_error_ptr(), X.nsq_error_len())
	end
	return "ok " .. num(r)
end
local function value(kind, arg)
	if kind == "num" then return 1, 0, (if arg == "nan" then 0/0 else tonumber(arg)) end
	if kind == "bool" then return 2, 0, tonumber(arg) end
	if kind == "text" then return 3, put(arg), 0 end
	if kind == "sym" then return 4, 0, sym(arg) end
	return 0, 0, 0
end
local inflight = {}
local function records(n)
	local b = mem.buffer
	local reqs, chg, msgs = buffer.readu32(b, hdr + 4), buffer.readu32(b, hdr + 12), buffer.readu32(b, hdr + 20)
	for i = 0, n - 1 do
		local r = reqs + 56 * i
		table.insert(inflight, buffer.readf64(b, r))
		emit(string.format("req %s kind=%d calls=%d bytes=%d attempt=%d agent=%d", num(buffer.readf64(b, r)), buffer.readu32(b, r + 8), buffer.readu32(b, r + 32), buffer.readu32(b, r + 36), buffer.readu32(b, r + 40), buffer.readi32(b, r + 28)))
		local first, count = buffer.readu32(b, r + 12), buffer.readu32(b, r + 16)
		for j = first, first + count - 1 do
			local c = chg + 48 * j
			local vk = buffer.readu32(b, c + 32)
			local v = if vk == 0 then "null" elseif vk == 1 then num(buffer.readf64(b, c + 40)) elseif vk == 2 then tostring(buffer.readf64(b, c + 40) ~= 0) else buffer.readstring(b, buffer.readf64(b, c + 40), buffer.readu32(b, c + 36))
			emit(string.format("  chg seq=%s group=%s agent=%d %s.%s=%s", num(buffer.readf64(b, c)), num(buffer.readf64(b, c + 8)), buffer.readu32(b, c + 16), text(buffer.readu32(b, c + 24)), text(buffer.readu32(b, c + 28)), v))
			b = mem.buffer
		end
		local mf, mc = buffer.readu32(b, r + 20), buffer.readu32(b, r + 24)
		for j = mf, mf + mc - 1 do
			local m = msgs + 24 * j
			emit(string.format("  msg %s: %s at %s", buffer.readstring(b, buffer.readu32(b, m), buffer.readu32(b, m + 4)), buffer.readstring(b, buffer.readu32(b, m + 8), buffer.readu32(b, m + 12)), num(buffer.readf64(b, m + 16))))
		end
	end
end
for line in string.gmatch(SCENARIO, "[^\n]+") do
	local w = string.split(line, " ")
	local op, now = w[1], tonumber(w[2])
	emit(line)
	if op == "set" then
		local s = slot(w[3], w[4], w[5]) -- before writing text: resolving may intern through the scratch
		local k, l, x = value(w[6], w[7])
		emit(result(X.nsq_set(now, s, k, l, x, tonumber(w[8]))))
	elseif op == "health" then emit(result(X.nsq_set_health(now, agent(w[3]), tonumber(w[4]))))
	elseif op == "state" then emit(result(X.nsq_set_state(now, agent(w[3]), sym(w[4]))))
	elseif op == "poll" then
		local n = X.nsq_poll(now)
		emit(result(n))
		if n > 0 then records(n) end
	elseif op == "ackall" then
		for _, id in inflight do emit(result(X.nsq_ack(id))) end
		inflight = {}
	elseif op == "failall" then
		local ra = tonumber(w[3])
		for _, id in inflight do emit(result(X.nsq_fail(now, id, if ra < 0 then 0 else 1, ra))) end
		inflight = {}
	elseif op == "begin" then emit(result(X.nsq_atomic_begin()))
	elseif op == "commit" then emit(result(X.nsq_atomic_commit(now)))
	elseif op == "after" then
		emit(result(X.nsq_after(tonumber(w[3]), slot(w[4], w[5], w[6]))))
	elseif op == "join" then
		emit(result(X.nsq_join_field(sym(w[5]), 1, 0, tonumber(w[6]))))
		emit(result(X.nsq_join(now, agent(w[3]), sym(w[4]))))
	elseif op == "leave" then emit(result(X.nsq_leave(now, agent(w[3]), sym(w[4]))))
	elseif op == "chat" then
		local a = agent(w[3]) -- before writing text: a first use interns through the scratch
		put(w[4] .. w[5])
		emit(result(X.nsq_chat(now, a, #w[4], #w[5])))
	elseif op == "decide" then
		local r = X.nsq_decide(now, agent(w[3]))
		emit(result(r) .. " staleness=" .. num(buffer.readf64(mem.buffer, hdr + 32)) .. " threshold=" .. num(buffer.readf64(mem.buffer, hdr + 40)))
	elseif op == "remove" then emit(result(X.nsq_remove_agent(agent(w[2]))))
	elseif op == "events" then
		local n = X.nsq_drain_events()
		emit(result(n))
		local b = mem.buffer
		local ev = buffer.readu32(b, hdr + 28)
		for i = 0, n - 1 do
			local e = ev + 32 * i
			emit(string.format("  event %d agent=%d %s %s %d", buffer.readu32(b, e), buffer.readu32(b, e + 4), num(buffer.readf64(b, e + 8)), num(buffer.readf64(b, e + 16)), buffer.readu32(b, e + 24)))
		end
	elseif op == "metrics" then
		emit(result(X.nsq_metrics()))
		local b = mem.buffer
		local m = buffer.readu32(b, hdr + 48)
		local vals = {}
		for i = 0, 26 do table.insert(vals, num(buffer.readf64(b, m + 8 * i))) end
		emit("  " .. table.concat(vals, " "))
	end
end
return table.concat(out, "\n")
"#;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn f64_at(b: &[u8], at: usize) -> f64 {
    f64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// A number as the driver prints it: integers in decimal, anything else by its bits.
pub fn num(x: f64) -> String {
    if x == x.floor() && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("0x{:016x}", x.to_bits())
    }
}

/// The native side of the same interpreter.
pub fn native(scenario: &str) -> String {
    use std::collections::HashMap;
    let mut f = Facade::new();
    assert_eq!(f.init(), 0);
    let mut out: Vec<String> = vec![];
    let put = |f: &mut Facade, s: &str| {
        f.scratch()[..s.len()].copy_from_slice(s.as_bytes());
        s.len() as i32
    };
    let mut syms: HashMap<String, i32> = HashMap::new();
    let mut agents: HashMap<String, i32> = HashMap::new();
    let mut slots: HashMap<String, i32> = HashMap::new();
    let mut inflight: Vec<f64> = vec![];
    fn sym(f: &mut Facade, syms: &mut HashMap<String, i32>, s: &str) -> i32 {
        if let Some(v) = syms.get(s) {
            return *v;
        }
        f.scratch()[..s.len()].copy_from_slice(s.as_bytes());
        let v = f.intern(s.len() as i32);
        syms.insert(s.into(), v);
        v
    }
    fn agent(
        f: &mut Facade,
        syms: &mut HashMap<String, i32>,
        agents: &mut HashMap<String, i32>,
        id: &str,
    ) -> i32 {
        if let Some(v) = agents.get(id) {
            return *v;
        }
        let s = sym(f, syms, id);
        let v = f.agent_handle(s);
        agents.insert(id.into(), v);
        v
    }
    let text = |f: &mut Facade, s: u32| {
        let n = f.sym_text(s as i32);
        String::from_utf8(f.scratch()[..n as usize].to_vec()).unwrap()
    };
    let result = |f: &Facade, r: f64| {
        if r < 0.0 {
            format!(
                "err {} {}",
                num(-r),
                String::from_utf8(f.error().to_vec()).unwrap()
            )
        } else {
            format!("ok {}", num(r))
        }
    };
    for line in scenario.lines() {
        let w: Vec<&str> = line.split(' ').collect();
        let now: f64 = w.get(1).and_then(|x| x.parse().ok()).unwrap_or(0.0);
        out.push(line.to_string());
        let mut slot_of = |f: &mut Facade, a: &str, b: &str, x: &str| -> i32 {
            let k = format!("{a}/{b}/{x}");
            if let Some(v) = slots.get(&k) {
                return *v;
            }
            let ah = agent(f, &mut syms, &mut agents, a);
            let (bs, xs) = (sym(f, &mut syms, b), sym(f, &mut syms, x));
            let v = f.slot(ah, bs, xs);
            slots.insert(k, v);
            v
        };
        match w[0] {
            "set" => {
                let s = slot_of(&mut f, w[2], w[3], w[4]);
                let (k, l, x) = match w[5] {
                    "num" => (
                        1,
                        0,
                        if w[6] == "nan" {
                            f64::NAN
                        } else {
                            w[6].parse().unwrap()
                        },
                    ),
                    "bool" => (2, 0, w[6].parse().unwrap()),
                    "text" => (3, put(&mut f, w[6]), 0.0),
                    "sym" => (4, 0, sym(&mut f, &mut syms, w[6]) as f64),
                    _ => (0, 0, 0.0),
                };
                let r = f.set(now, s, k, l, x, w[7].parse().unwrap());
                out.push(result(&f, r));
            }
            "health" => {
                let a = agent(&mut f, &mut syms, &mut agents, w[2]);
                let r = f.set_health(now, a, w[3].parse().unwrap());
                out.push(result(&f, r));
            }
            "state" => {
                let a = agent(&mut f, &mut syms, &mut agents, w[2]);
                let s = sym(&mut f, &mut syms, w[3]);
                let r = f.set_state(now, a, s);
                out.push(result(&f, r));
            }
            "poll" => {
                let n = f.poll(now);
                out.push(result(&f, n as f64));
                let (reqs, chg, msgs) = f.poll_records();
                let (reqs, chg, msgs) = (reqs.to_vec(), chg.to_vec(), msgs.to_vec());
                let (base, tx) = f.poll_text();
                let tx = tx.to_vec();
                let at = |addr: u32, len: u32| {
                    String::from_utf8(
                        tx[(addr - base) as usize..(addr - base + len) as usize].to_vec(),
                    )
                    .unwrap()
                };
                for r in reqs.chunks(REQUEST_RECORD).take(n.max(0) as usize) {
                    inflight.push(f64_at(r, 0));
                    out.push(format!(
                        "req {} kind={} calls={} bytes={} attempt={} agent={}",
                        num(f64_at(r, 0)),
                        u32_at(r, 8),
                        u32_at(r, 32),
                        u32_at(r, 36),
                        u32_at(r, 40),
                        u32_at(r, 28) as i32
                    ));
                    let (first, count) = (u32_at(r, 12) as usize, u32_at(r, 16) as usize);
                    for c in chg[first * CHANGE_RECORD..(first + count) * CHANGE_RECORD]
                        .chunks(CHANGE_RECORD)
                    {
                        let v = match u32_at(c, 32) {
                            0 => "null".to_string(),
                            1 => num(f64_at(c, 40)),
                            2 => (f64_at(c, 40) != 0.0).to_string(),
                            _ => at(f64_at(c, 40) as u32, u32_at(c, 36)),
                        };
                        let (b, x) = (text(&mut f, u32_at(c, 24)), text(&mut f, u32_at(c, 28)));
                        out.push(format!(
                            "  chg seq={} group={} agent={} {b}.{x}={v}",
                            num(f64_at(c, 0)),
                            num(f64_at(c, 8)),
                            u32_at(c, 16)
                        ));
                    }
                    let (mf, mc) = (u32_at(r, 20) as usize, u32_at(r, 24) as usize);
                    for m in
                        msgs[mf * MESSAGE_RECORD..(mf + mc) * MESSAGE_RECORD].chunks(MESSAGE_RECORD)
                    {
                        out.push(format!(
                            "  msg {}: {} at {}",
                            at(u32_at(m, 0), u32_at(m, 4)),
                            at(u32_at(m, 8), u32_at(m, 12)),
                            num(f64_at(m, 16))
                        ));
                    }
                }
            }
            "ackall" => {
                for id in std::mem::take(&mut inflight) {
                    let r = f.ack(id);
                    out.push(result(&f, r as f64));
                }
            }
            "failall" => {
                let ra: f64 = w[2].parse().unwrap();
                for id in std::mem::take(&mut inflight) {
                    let r = f.fail_request(now, id, (ra >= 0.0) as i32, ra);
                    out.push(result(&f, r as f64));
                }
            }
            "begin" => {
                let r = f.atomic_begin();
                out.push(result(&f, r as f64));
            }
            "commit" => {
                let r = f.atomic_commit(now);
                out.push(result(&f, r));
            }
            "after" => {
                let s = slot_of(&mut f, w[3], w[4], w[5]);
                let r = f.after(w[2].parse().unwrap(), s);
                out.push(result(&f, r as f64));
            }
            "join" => {
                let field = sym(&mut f, &mut syms, w[4]);
                let r = f.join_field(field, 1, 0, w[5].parse().unwrap());
                out.push(result(&f, r as f64));
                let a = agent(&mut f, &mut syms, &mut agents, w[2]);
                let m = sym(&mut f, &mut syms, w[3]);
                let r = f.join(now, a, m);
                out.push(result(&f, r));
            }
            "leave" => {
                let a = agent(&mut f, &mut syms, &mut agents, w[2]);
                let m = sym(&mut f, &mut syms, w[3]);
                let r = f.leave(now, a, m);
                out.push(result(&f, r));
            }
            "chat" => {
                let a = agent(&mut f, &mut syms, &mut agents, w[2]);
                put(&mut f, &format!("{}{}", w[3], w[4]));
                let r = f.chat(now, a, w[3].len() as i32, w[4].len() as i32);
                out.push(result(&f, r as f64));
            }
            "decide" => {
                let a = agent(&mut f, &mut syms, &mut agents, w[2]);
                let r = f.decide(now, a);
                let h = f.header().to_vec();
                out.push(format!(
                    "{} staleness={} threshold={}",
                    result(&f, r as f64),
                    num(f64_at(&h, 32)),
                    num(f64_at(&h, 40))
                ));
            }
            "remove" => {
                let a = agent(&mut f, &mut syms, &mut agents, w[1]);
                let r = f.remove_agent(a);
                out.push(result(&f, r as f64));
            }
            "events" => {
                let n = f.drain_events();
                out.push(result(&f, n as f64));
                for e in f.event_records().to_vec().chunks(EVENT_RECORD) {
                    out.push(format!(
                        "  event {} agent={} {} {} {}",
                        u32_at(e, 0),
                        u32_at(e, 4),
                        num(f64_at(e, 8)),
                        num(f64_at(e, 16)),
                        u32_at(e, 24)
                    ));
                }
            }
            "metrics" => {
                let r = f.metrics();
                out.push(result(&f, r as f64));
                let m = f.metrics_record().to_vec();
                let vals: Vec<String> = (0..27).map(|i| num(f64_at(&m, i * 8))).collect();
                out.push(format!("  {}", vals.join(" ")));
            }
            op => panic!("unknown op {op}"),
        }
    }
    out.join("\n")
}
