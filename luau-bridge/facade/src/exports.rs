//! The `extern "C"` exports of luau-bridge/ABI.md: each one forwards to [`Facade`].
//! The only `unsafe` of the facade: the one instance a wasm module holds.

use crate::facade::Facade;
use crate::records::addr;
use crate::SCRATCH_CAP;
use core::cell::UnsafeCell;

struct Instance(UnsafeCell<Option<Facade>>);

// SAFETY: a wasm32v1-none module has one thread, and no export re-enters another.
unsafe impl Sync for Instance {}

static INSTANCE: Instance = Instance(UnsafeCell::new(None));

fn f() -> &'static mut Facade {
    // SAFETY: single-threaded, not re-entrant (see above): one live reference at a time.
    let slot = unsafe { &mut *INSTANCE.0.get() };
    match slot {
        Some(facade) => facade,
        None => first(slot),
    }
}

/// The first call creates the facade; out of line so every export stays small.
#[cold]
#[inline(never)]
fn first(slot: &'static mut Option<Facade>) -> &'static mut Facade {
    slot.insert(Facade::new())
}

#[no_mangle]
pub extern "C" fn nsq_config(key: i32, value: f64) -> i32 {
    f().config(key, value)
}
#[no_mangle]
pub extern "C" fn nsq_init() -> i32 {
    f().init()
}
#[no_mangle]
pub extern "C" fn nsq_scratch_ptr() -> i32 {
    addr(f().scratch()) as i32
}
#[no_mangle]
pub extern "C" fn nsq_scratch_cap() -> i32 {
    SCRATCH_CAP as i32
}
#[no_mangle]
pub extern "C" fn nsq_out_ptr() -> i32 {
    addr(f().header()) as i32
}
#[no_mangle]
pub extern "C" fn nsq_error_ptr() -> i32 {
    addr(f().error()) as i32
}
#[no_mangle]
pub extern "C" fn nsq_error_len() -> i32 {
    f().error().len() as i32
}
#[no_mangle]
pub extern "C" fn nsq_intern(len: i32) -> i32 {
    f().intern(len)
}
#[no_mangle]
pub extern "C" fn nsq_sym_text(sym: i32) -> i32 {
    f().sym_text(sym)
}
#[no_mangle]
pub extern "C" fn nsq_agent(id_sym: i32) -> i32 {
    f().agent_handle(id_sym)
}
#[no_mangle]
pub extern "C" fn nsq_slot(agent: i32, block: i32, field: i32) -> i32 {
    f().slot(agent, block, field)
}
#[no_mangle]
pub extern "C" fn nsq_set(now: f64, slot: i32, kind: i32, len: i32, x: f64, prio: i32) -> f64 {
    f().set(now, slot, kind, len, x, prio)
}
#[no_mangle]
pub extern "C" fn nsq_set_health(now: f64, agent: i32, health: f64) -> f64 {
    f().set_health(now, agent, health)
}
#[no_mangle]
pub extern "C" fn nsq_set_state(now: f64, agent: i32, state: i32) -> f64 {
    f().set_state(now, agent, state)
}
#[no_mangle]
pub extern "C" fn nsq_after(seq: f64, slot: i32) -> i32 {
    f().after(seq, slot)
}
#[no_mangle]
pub extern "C" fn nsq_join_field(field: i32, kind: i32, len: i32, x: f64) -> i32 {
    f().join_field(field, kind, len, x)
}
#[no_mangle]
pub extern "C" fn nsq_join(now: f64, agent: i32, member: i32) -> f64 {
    f().join(now, agent, member)
}
#[no_mangle]
pub extern "C" fn nsq_leave(now: f64, agent: i32, member: i32) -> f64 {
    f().leave(now, agent, member)
}
#[no_mangle]
pub extern "C" fn nsq_atomic_begin() -> i32 {
    f().atomic_begin()
}
#[no_mangle]
pub extern "C" fn nsq_atomic_commit(now: f64) -> f64 {
    f().atomic_commit(now)
}
#[no_mangle]
pub extern "C" fn nsq_atomic_abort() -> i32 {
    f().atomic_abort()
}
#[no_mangle]
pub extern "C" fn nsq_poll(now: f64) -> i32 {
    f().poll(now)
}
#[no_mangle]
pub extern "C" fn nsq_poll_before_build(now: f64) -> i32 {
    f().poll_before_build(now)
}
#[no_mangle]
pub extern "C" fn nsq_confirm_records(n: i32) -> i32 {
    f().confirm_records(n)
}
#[no_mangle]
pub extern "C" fn nsq_ack(request: f64) -> i32 {
    f().ack(request)
}
#[no_mangle]
pub extern "C" fn nsq_fail(now: f64, request: f64, has_retry_after: i32, retry_after: f64) -> i32 {
    f().fail_request(now, request, has_retry_after, retry_after)
}
#[no_mangle]
pub extern "C" fn nsq_flush(now: f64) -> i32 {
    f().flush(now)
}
#[no_mangle]
pub extern "C" fn nsq_config_block_limit(label_len: i32, limit: f64) -> i32 {
    f().config_block_limit(label_len, limit)
}
#[no_mangle]
pub extern "C" fn nsq_await_block(agent: i32, block: i32) -> i32 {
    f().await_block(agent, block)
}
#[no_mangle]
pub extern "C" fn nsq_take_read_call(now: f64) -> i32 {
    f().take_read_call(now)
}
#[no_mangle]
pub extern "C" fn nsq_stage_text(len: i32) -> i32 {
    f().stage_text(len)
}
#[no_mangle]
pub extern "C" fn nsq_load_block(now: f64, agent: i32, block: i32) -> i32 {
    f().load_block(now, agent, block)
}
#[no_mangle]
pub extern "C" fn nsq_drain_events() -> i32 {
    f().drain_events()
}
#[no_mangle]
pub extern "C" fn nsq_decide(now: f64, agent: i32) -> i32 {
    f().decide(now, agent)
}
#[no_mangle]
pub extern "C" fn nsq_is_fresh(now: f64, agent: i32) -> i32 {
    f().is_fresh(now, agent)
}
#[no_mangle]
pub extern "C" fn nsq_chat(now: f64, agent: i32, sender_len: i32, text_len: i32) -> i32 {
    f().chat(now, agent, sender_len, text_len)
}
#[no_mangle]
pub extern "C" fn nsq_remove_agent(agent: i32) -> i32 {
    f().remove_agent(agent)
}
#[no_mangle]
pub extern "C" fn nsq_in_combat(now: f64, agent: i32) -> i32 {
    f().in_combat(now, agent)
}
#[no_mangle]
pub extern "C" fn nsq_in_flight() -> i32 {
    f().in_flight()
}
#[no_mangle]
pub extern "C" fn nsq_is_idle() -> i32 {
    f().is_idle()
}
#[no_mangle]
pub extern "C" fn nsq_metrics() -> i32 {
    f().metrics()
}
#[no_mangle]
pub extern "C" fn nsq_absorb(n: i32, next_seq: f64, now: f64) -> i32 {
    f().absorb(n, next_seq, now)
}
#[no_mangle]
pub extern "C" fn nsq_next_seq() -> f64 {
    f().next_seq()
}
#[no_mangle]
pub extern "C" fn nsq_next_poll() -> f64 {
    f().next_poll()
}
