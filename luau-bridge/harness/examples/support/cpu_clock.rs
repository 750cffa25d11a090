//! The one CPU clock of the harness's timing examples (`versus_profile`, `kept_time`),
//! included by `#[path]` (examples share no crate module).

/// This thread's CPU time in seconds: the Luau VM runs on it, the HTTP exchanges on
/// threads of their own, and the shared machine's other processes do not advance it.
pub fn thread_cpu_seconds() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given and nothing else.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}
