//! CPU scheduling of the snapshot's threads (Linux; elsewhere no-ops).
//!
//! The encoder and writer share a core with the executor when the server
//! is pinned to one, and the kernel's fair scheduler then lets a runnable
//! background thread finish its slice (about 3 ms) before a woken executor
//! runs: the pacing in `snapshot.rs` bounds how much CPU the encoder takes,
//! not when. While a snapshot runs, the executor asks for a short slice
//! (EEVDF's `sched_runtime` for SCHED_OTHER, Linux 6.12+): a task with a
//! shorter slice than the running one preempts it on wake-up, and a running
//! task is protected from preemption for at most the shortest slice queued.
//!
//! The background threads keep the default weight: at nice 19 the encoder
//! got almost no CPU while the executor (or anything else on the core) was
//! busy, and a save under load took 130 s instead of 15. Nice 5 on the
//! encoder, or SCHED_BATCH on both threads, did not shorten the executor's
//! longest wait while a million-element collection was encoded (3-12 ms
//! either way, on a core shared with other load), and nice 5 doubled that
//! save's time and its kept-alive memory.
//!
//! The short slice only helps a woken executor that is eligible, i.e. has
//! not had more than its share of the core: an executor kept busy by
//! clients often has, and then waits for the scheduler tick (4 ms at
//! HZ=250) while the encoder runs unpaced through one big collection,
//! which it encodes in one call.

/// The slice the executor asks for while a snapshot runs: the kernel's
/// smallest (0.1 ms).
pub const EXECUTOR_SLICE_NS: u64 = 100_000;

/// `struct sched_attr` as `sched_setattr(2)` takes it (the first version,
/// 48 bytes; newer kernels accept it).
#[cfg(target_os = "linux")]
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

#[cfg(target_os = "linux")]
fn setattr(policy: u32, nice: i32, runtime_ns: u64) -> bool {
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags: 0,
        nice,
        priority: 0,
        runtime: runtime_ns,
        deadline: 0,
        period: 0,
    };
    // SAFETY: `attr` is a valid sched_attr of the size it declares, alive
    // for the call; pid 0 is the calling thread.
    unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) == 0 }
}

/// Asks for a short slice (`Some(ns)`) or the default one (`None`) for the
/// calling thread at nice 0 (the executor). Returns whether the kernel
/// accepted it (kernels before 6.12 reject a runtime for SCHED_OTHER).
pub fn set_executor_slice(slice_ns: Option<u64>) -> bool {
    #[cfg(target_os = "linux")]
    {
        // Keep the thread's nice value (sched_setattr sets both).
        // SAFETY: plain syscalls without pointers.
        let nice = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::getpriority(libc::PRIO_PROCESS, tid)
        };
        setattr(libc::SCHED_OTHER as u32, nice, slice_ns.unwrap_or(0))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = slice_ns;
        false
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The kernel accepts the short slice and the default back (6.12+;
    /// older kernels reject both, which the server tolerates).
    #[test]
    fn the_executor_slice_is_set_and_reset() {
        std::thread::spawn(|| {
            let short = set_executor_slice(Some(EXECUTOR_SLICE_NS));
            let default = set_executor_slice(None);
            assert_eq!(short, default);
        })
        .join()
        .unwrap();
    }
}
