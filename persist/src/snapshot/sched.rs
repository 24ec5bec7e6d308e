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
//! The short slice only helps a woken executor that is eligible, i.e. has
//! not had more than its fair share of the core: an executor kept busy by
//! clients often has, and then waits for the scheduler tick (4 ms at
//! HZ=250) while a background thread runs. With a million-element sorted
//! set and list being written during a save, `perf sched` showed the
//! executor runnable for 8-12 ms at a time behind the encoder (one big
//! collection is one call of ~70 ms CPU, unpaced) followed by the writer
//! (16 queued chunks written back to back), a tick each.
//!
//! Measured and not kept: both threads at nice +5 (a lighter weight leaves
//! the busy executor 3/4 of the core against one of them, so it is
//! eligible more often). With the big collections being written (10 saves
//! each way, machine with other load) the save report's longest executor
//! wait had a median of 4.2 ms instead of 9.0 and the slowest probe reply
//! 6.9 ms instead of 9.7, but the save took 0.5-1.1 s instead of 0.3-0.5 s
//! and kept up to 145 MB of replaced chunks alive instead of 44-76 MB; on
//! the idle machine, two alternating runs each gave probe maxima of 5.0
//! and 7.9 ms against 9.2 and 7.3, with 120-131 MB kept alive against
//! 74-76 MB. That memory is what the snapshot promises to bound, for a
//! stall gain within the noise. Nice 10 made the big save take 2.5 s; at
//! nice 19 the encoder got almost no CPU while the executor (or anything
//! else on the core) was busy, and a save under load took 130 s instead
//! of 15. SCHED_BATCH on both threads, or nice 5 on the encoder alone,
//! made no clear difference. Also measured and not kept: a pacing point
//! every 4096 elements inside a big value (sleeping to half a CPU), with
//! the share also capped at 90% past the pacing limit. In three
//! alternating loaded saves each, the slowest probe reply was 7.7-9.8 ms
//! against 8.5-9.2 ms, with up to 53 MB kept alive against 43. The
//! encoder's 4-6 ms runs came at the save's start, while the big
//! collections were copied and the copies waiting were past the limit.

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
