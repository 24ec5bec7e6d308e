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
//! Where the kernel does not preempt, the encoder and the writer give the
//! core back themselves: see [`yield_point`].
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

use std::cell::RefCell;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The slice the executor asks for while a snapshot runs: the kernel's
/// smallest (0.1 ms).
pub const EXECUTOR_SLICE_NS: u64 = 100_000;

/// What a snapshot's encoder knows of the event loop: its thread, and how
/// many times it went to sleep (waiting for I/O or a timer), which its
/// runtime's park hooks count.
#[derive(Clone, Default)]
pub struct EventLoopState(Arc<LoopInner>);

#[derive(Default)]
struct LoopInner {
    /// The loop thread's id (0 until it first wakes).
    tid: AtomicI32,
    parks: AtomicU64,
    /// Snapshot threads (the encoder, the writer) waiting for the next park.
    waiting: AtomicU32,
    /// The loop runs a snapshot to its end itself (SAVE): it will not park
    /// until the snapshot threads are done, so they must not wait for it.
    in_foreground: AtomicU32,
    lock: Mutex<()>,
    parked: Condvar,
}

impl EventLoopState {
    /// The loop is about to sleep.
    pub fn parked(&self) {
        let l = &self.0;
        l.parks.fetch_add(1, Ordering::SeqCst);
        if l.waiting.load(Ordering::SeqCst) > 0 {
            let _g = l.lock.lock().unwrap_or_else(|p| p.into_inner());
            l.parked.notify_all();
        }
    }

    /// How many times the loop went to sleep.
    pub fn parks(&self) -> u64 {
        self.0.parks.load(Ordering::SeqCst)
    }

    /// Marks the loop as running a snapshot to its end on the spot (SAVE,
    /// a rewrite finished before one) until the guard is dropped.
    pub fn in_foreground(&self) -> ForegroundGuard {
        self.0.in_foreground.fetch_add(1, Ordering::SeqCst);
        ForegroundGuard(self.clone())
    }

    /// The loop's thread id, once it has woken.
    pub fn thread(&self) -> Option<i32> {
        Some(self.0.tid.load(Ordering::Relaxed)).filter(|&t| t != 0)
    }

    /// The loop woke up.
    pub fn unparked(&self) {
        if self.0.tid.load(Ordering::Relaxed) == 0 {
            self.0.tid.store(current_tid(), Ordering::Relaxed);
        }
    }

    /// Waits until the loop has gone to sleep since `parks` was read, or
    /// for `max`.
    fn wait_for_park(&self, parks: u64, max: Duration) {
        let l = &self.0;
        l.waiting.fetch_add(1, Ordering::SeqCst);
        let g = l.lock.lock().unwrap_or_else(|p| p.into_inner());
        let _ = l
            .parked
            .wait_timeout_while(g, max, |_| l.parks.load(Ordering::SeqCst) == parks);
        l.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// See [`EventLoopState::in_foreground`].
pub struct ForegroundGuard(EventLoopState);

impl Drop for ForegroundGuard {
    fn drop(&mut self) {
        self.0 .0.in_foreground.fetch_sub(1, Ordering::SeqCst);
    }
}

fn current_tid() -> i32 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: no arguments.
        unsafe { libc::syscall(libc::SYS_gettid) as i32 }
    }
    #[cfg(not(target_os = "linux"))]
    0
}

/// The CPU the calling thread runs on (Linux).
fn current_cpu() -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: no arguments; returns -1 on failure.
        let c = unsafe { libc::sched_getcpu() };
        u32::try_from(c).ok()
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// A thread's scheduling state as `/proc/self/task/<tid>/stat` gives it:
/// whether it is runnable (running or waiting for a CPU), and the CPU it
/// last ran on.
fn runnable_on(stat: &[u8]) -> Option<(bool, u32)> {
    // "tid (comm) state ..." where comm may hold anything, ')' included.
    let rest = &stat[stat.iter().rposition(|&b| b == b')')? + 1..];
    let rest = std::str::from_utf8(rest).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    // `processor` is field 39 of the line, the 37th after the comm.
    let cpu = fields.nth(35)?.parse().ok()?;
    Some((state == "R", cpu))
}

/// How long the encoder runs between two looks at the event loop.
const RUN_BETWEEN_LOOKS: Duration = Duration::from_micros(250);
/// The longest it leaves the core to an event loop it found waiting for it
/// (it gets the core back as soon as the loop sleeps).
const YIELD_AT_MOST: Duration = Duration::from_millis(1);

/// Lets the encoder give its core to the event loop while the loop has
/// work: at [`yield_point`]s, every [`RUN_BETWEEN_LOOKS`] at most, if the
/// loop's thread is runnable on the encoder's CPU (so waiting for it), the
/// encoder waits until the loop sleeps again, for [`YIELD_AT_MOST`].
///
/// The scheduler would let the encoder finish its slice first: an executor
/// that has had its share of the core is not picked on wake-up, and waits
/// for the next tick (4 ms at HZ=250). With a million-element sorted set
/// and list being written, their copies are encoded unpaced at the start of
/// a save (tens of ms each, one record), and `perf sched` showed the
/// executor runnable behind the encoder for one tick after another. Giving
/// the core back for a fixed 0.1 ms was not enough: the encoder, woken,
/// took it back at once, and the executor had 40% of it while its load
/// needed three quarters. The loop's own state (`/proc`) is read, not a
/// flag it keeps: a loop woken but not yet running cannot say so.
struct Yielder {
    event_loop: EventLoopState,
    /// The loop thread's `/proc` stat file, once its id is known.
    stat: Option<std::fs::File>,
    buf: Vec<u8>,
    last_look: Instant,
    yields: u64,
    demand: Demand,
}

/// How often [`loop_idle_percent`] samples the loop's demand for its CPU.
const DEMAND_EVERY: Duration = Duration::from_millis(10);

/// The event loop's demand for its CPU, from the scheduler's own account
/// of its thread (`/proc/self/task/<tid>/schedstat`: nanoseconds run and
/// nanoseconds spent runnable waiting for a CPU). Time it waited behind
/// the encoder counts as demand, so the encoder taking the CPU does not
/// make the loop look idle.
#[derive(Default)]
struct Demand {
    file: Option<std::fs::File>,
    /// When the last sample was taken, and the loop's run + wait time then.
    last: Option<(Instant, u64)>,
    idle_percent: Option<u32>,
}

/// The first two fields of a schedstat line, summed: time run and time
/// waited for a CPU, in ns.
fn run_and_wait_ns(schedstat: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(schedstat).ok()?;
    let mut fields = text.split_ascii_whitespace();
    let run: u64 = fields.next()?.parse().ok()?;
    let wait: u64 = fields.next()?.parse().ok()?;
    Some(run + wait)
}

impl Yielder {
    /// Whether the loop's thread waits for the CPU the caller runs on, to
    /// serve clients.
    fn loop_waits(&mut self) -> bool {
        if self.event_loop.0.in_foreground.load(Ordering::SeqCst) > 0 {
            return false;
        }
        if self.stat.is_none() {
            let Some(tid) = self.event_loop.thread() else {
                return false;
            };
            self.stat = std::fs::File::open(format!("/proc/self/task/{tid}/stat")).ok();
        }
        let Some(file) = &self.stat else {
            return false;
        };
        self.buf.resize(1024, 0);
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(file, &mut self.buf, 0);
        #[cfg(not(unix))]
        let n: std::io::Result<usize> = Ok(0);
        let Ok(n) = n else {
            return false;
        };
        match (runnable_on(&self.buf[..n]), current_cpu()) {
            (Some((true, loop_cpu)), Some(cpu)) => loop_cpu == cpu,
            _ => false,
        }
    }

    /// See [`loop_idle_percent`].
    fn idle_percent(&mut self) -> Option<u32> {
        let d = &mut self.demand;
        if d.last.is_some_and(|(at, _)| at.elapsed() < DEMAND_EVERY) {
            return d.idle_percent;
        }
        if d.file.is_none() {
            let tid = self.event_loop.thread()?;
            d.file = std::fs::File::open(format!("/proc/self/task/{tid}/schedstat")).ok();
        }
        let file = d.file.as_ref()?;
        let mut buf = [0u8; 128];
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(file, &mut buf, 0).ok()?;
        #[cfg(not(unix))]
        let n = 0;
        let busy_ns = run_and_wait_ns(&buf[..n])?;
        let now = Instant::now();
        if let Some((at, before)) = d.last {
            let wall = now.duration_since(at).as_nanos().max(1) as u64;
            let busy = busy_ns.saturating_sub(before).min(wall);
            d.idle_percent = Some((100 - busy * 100 / wall) as u32);
        }
        d.last = Some((now, busy_ns));
        d.idle_percent
    }
}

thread_local! {
    /// The encoder thread's [`Yielder`]; none on other threads.
    static YIELDER: RefCell<Option<Yielder>> = const { RefCell::new(None) };
}

/// Makes the calling thread (a snapshot's encoder) give its core to
/// `event_loop` at [`yield_point`]s.
pub(crate) fn yield_to(event_loop: EventLoopState) {
    YIELDER.with(|y| {
        *y.borrow_mut() = Some(Yielder {
            event_loop,
            stat: None,
            buf: Vec::new(),
            last_look: Instant::now(),
            yields: 0,
            demand: Demand::default(),
        })
    });
}

/// The share of time (in %) the event loop's thread neither ran nor waited
/// to run, over the last [`DEMAND_EVERY`] or so; sampled at most that
/// often. `None` on a thread without [`yield_to`], while the loop runs a
/// snapshot in the foreground, or before two samples.
pub(crate) fn loop_idle_percent() -> Option<u32> {
    YIELDER.with(|y| {
        let mut y = y.borrow_mut();
        let y = y.as_mut()?;
        if y.event_loop.0.in_foreground.load(Ordering::SeqCst) > 0 {
            return None;
        }
        y.idle_percent()
    })
}

/// Times the calling thread left its core to the event loop.
pub(crate) fn yields() -> u64 {
    YIELDER.with(|y| y.borrow().as_ref().map_or(0, |y| y.yields))
}

/// A point where an encoder may leave its core to the event loop: called
/// every few tens of microseconds of encoding (every 1024 elements of a big
/// value, every 64 small keys, every chunk of a dropped copy, every piece
/// written out). Does nothing on other threads.
pub(crate) fn yield_point() {
    YIELDER.with(|y| {
        let mut y = y.borrow_mut();
        let Some(y) = y.as_mut() else {
            return;
        };
        if y.last_look.elapsed() < RUN_BETWEEN_LOOKS {
            return;
        }
        let parks = y.event_loop.0.parks.load(Ordering::SeqCst);
        if y.loop_waits() {
            y.event_loop.wait_for_park(parks, YIELD_AT_MOST);
            y.yields += 1;
        }
        y.last_look = Instant::now();
    })
}

/// [`yield_point`] once every 1024 calls, for a loop over the `i`th element.
#[inline]
pub(crate) fn element_point(i: usize) {
    if i % 1024 == 1023 {
        yield_point();
    }
}

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
        // SAFETY: a plain syscall without pointers.
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, current_tid() as libc::id_t) };
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

    #[test]
    fn a_stat_line_gives_the_state_and_the_cpu() {
        let mut line = b"42 (a) b) c) S".to_vec();
        for i in 4..=52 {
            line.extend_from_slice(format!(" {}", if i == 39 { 7 } else { 1000 + i }).as_bytes());
        }
        assert_eq!(runnable_on(&line), Some((false, 7)));
        line[13] = b'R';
        assert_eq!(runnable_on(&line), Some((true, 7)));
        assert_eq!(runnable_on(b"42 (a) R 1 2"), None);
        // This thread runs, so it is runnable, on the CPU it runs on.
        let stat = std::fs::read(format!("/proc/self/task/{}/stat", current_tid())).unwrap();
        let (runnable, _) = runnable_on(&stat).unwrap();
        assert!(runnable);
    }

    /// Pins the calling thread to `cpu`.
    fn pin(cpu: u32) {
        // SAFETY: `set` is a valid cpu_set_t for the call; 0 is this thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu as usize, &mut set);
            assert_eq!(
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
                0
            );
        }
    }

    /// Runs an encoder beside a busy event loop on one CPU for up to
    /// `looks` looks (stopping at its first yield) and returns its yields;
    /// with `foreground`, the loop runs a snapshot to its end meanwhile.
    fn yields_beside_a_busy_loop(looks: u32, foreground: bool) -> u64 {
        let cpu = current_cpu().unwrap();
        let state = EventLoopState::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let event_loop = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                pin(cpu);
                state.unparked();
                // Busy, as a loaded event loop, until an encoder waits;
                // then it parks.
                while !stop.load(Ordering::SeqCst) {
                    if state.0.waiting.load(Ordering::SeqCst) > 0 {
                        state.parked();
                        state.unparked();
                    }
                    std::hint::spin_loop();
                }
            })
        };
        while state.thread().is_none() {
            std::thread::yield_now();
        }
        let guard = foreground.then(|| state.in_foreground());
        let encoder = {
            let state = state.clone();
            std::thread::spawn(move || {
                pin(cpu);
                yield_to(state);
                for _ in 0..looks {
                    std::thread::sleep(RUN_BETWEEN_LOOKS);
                    let t = Instant::now();
                    while t.elapsed() < RUN_BETWEEN_LOOKS {
                        std::hint::spin_loop();
                    }
                    yield_point();
                    if yields() > 0 {
                        break;
                    }
                }
                yields()
            })
        };
        let yielded = encoder.join().unwrap();
        drop(guard);
        stop.store(true, Ordering::SeqCst);
        event_loop.join().unwrap();
        yielded
    }

    /// An encoder sharing a CPU with a busy event loop leaves the core to
    /// it until the loop parks; it does not while the loop runs a snapshot
    /// itself, or sleeps.
    #[test]
    fn an_encoder_waits_for_a_loop_runnable_on_its_cpu_to_park() {
        assert!(
            yields_beside_a_busy_loop(20_000, false) > 0,
            "the encoder never found the loop waiting"
        );
        assert_eq!(yields_beside_a_busy_loop(50, true), 0);

        let cpu = current_cpu().unwrap();
        // A loop that sleeps is not waited for.
        let sleeping = EventLoopState::default();
        let sleeper = {
            let state = sleeping.clone();
            std::thread::spawn(move || {
                pin(cpu);
                state.unparked();
                std::thread::sleep(Duration::from_millis(200));
            })
        };
        while sleeping.0.tid.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        let checker = std::thread::spawn(move || {
            pin(cpu);
            yield_to(sleeping);
            std::thread::sleep(Duration::from_millis(20));
            yield_point();
            yields()
        });
        assert_eq!(checker.join().unwrap(), 0);
        sleeper.join().unwrap();
    }

    #[test]
    fn schedstat_lines_give_run_plus_wait() {
        assert_eq!(run_and_wait_ns(b"1500 250 7\n"), Some(1750));
        assert_eq!(run_and_wait_ns(b"1500\n"), None);
        assert_eq!(run_and_wait_ns(b"x 1 2\n"), None);
        assert_eq!(run_and_wait_ns(b""), None);
    }

    /// The idle share of a loop that spins is near none, of one that
    /// sleeps near all; without a loop there is none to give.
    #[test]
    fn a_busy_loop_leaves_no_idle_share_and_a_sleeping_one_all() {
        assert_eq!(loop_idle_percent(), None);
        let idle_beside = |spin: bool| {
            let state = EventLoopState::default();
            let stop = Arc::new(AtomicU32::new(0));
            let event_loop = {
                let (state, stop) = (state.clone(), stop.clone());
                std::thread::spawn(move || {
                    state.unparked();
                    while stop.load(Ordering::Relaxed) == 0 {
                        if spin {
                            std::hint::spin_loop();
                        } else {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                })
            };
            while state.thread().is_none() {
                std::thread::yield_now();
            }
            let idle = std::thread::spawn(move || {
                yield_to(state);
                assert_eq!(loop_idle_percent(), None, "one sample gives no share");
                std::thread::sleep(DEMAND_EVERY * 5);
                loop_idle_percent().expect("a share after two samples")
            })
            .join()
            .unwrap();
            stop.store(1, Ordering::Relaxed);
            event_loop.join().unwrap();
            idle
        };
        let busy = idle_beside(true);
        assert!(busy <= 10, "a spinning loop idle {busy}%");
        let sleeping = idle_beside(false);
        assert!(sleeping >= 80, "a sleeping loop idle {sleeping}%");
    }

    #[test]
    fn a_yield_point_does_nothing_on_other_threads() {
        yield_point();
        assert_eq!(yields(), 0);
    }

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
