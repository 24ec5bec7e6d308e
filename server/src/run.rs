//! Start-up, listeners, periodic work and shutdown.

use crate::busy_poll::BusyPoll;
use crate::config::{Config, LogLevel};
use crate::conn::{serve, Shared};
use crate::exec::{Executor, ShutdownMode};
use redoubt_persist::snapshot::sched::EventLoopState;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Sets up `tracing` to honour `loglevel` and `logfile`.
pub fn init_logging(cfg: &Config) {
    let level = match cfg.loglevel {
        LogLevel::Debug => "debug",
        LogLevel::Verbose => "info",
        LogLevel::Notice => "info",
        LogLevel::Warning => "warn",
        LogLevel::Nothing => "off",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("REDOUBT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if cfg.logfile.is_empty() {
        builder.init();
    } else {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cfg.logfile)
        {
            Ok(f) => builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .init(),
            Err(e) => {
                builder.init();
                tracing::warn!("can't open the log file {}: {e}", cfg.logfile);
            }
        }
    }
}

/// Binds every configured address. Addresses prefixed with '-' are optional:
/// failing to bind them is not an error (as Redis's `bind 127.0.0.1 -::1`).
async fn bind_all(cfg: &Config) -> std::io::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for addr in &cfg.bind {
        let (optional, host) = match addr.strip_prefix('-') {
            Some(h) => (true, h),
            None => (false, addr.as_str()),
        };
        let host = if host == "*" { "0.0.0.0" } else { host };
        let sock = if host.contains(':') {
            format!("[{host}]:{}", cfg.port)
        } else {
            format!("{host}:{}", cfg.port)
        };
        match TcpListener::bind(&sock).await {
            Ok(l) => out.push(l),
            Err(e) if optional => tracing::debug!("optional bind {sock} failed: {e}"),
            Err(e) => {
                tracing::warn!("Warning: Could not create server TCP listening socket {sock}: {e}");
                return Err(e);
            }
        }
    }
    if out.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            "no address to listen on",
        ));
    }
    Ok(out)
}

/// Runs the server until SHUTDOWN or a signal. Everything runs on the
/// calling thread: the executor and every connection task.
pub fn run(cfg: Config) -> std::io::Result<()> {
    // Before the loop starts any thread, so that they inherit it. As
    // Redis, a list the process cannot run on is not fatal.
    if let Some(list) = &cfg.server_cpulist {
        if let Err(e) = list.pin_current_thread() {
            tracing::warn!("Can't set the server's CPU affinity to {list}: {e}");
        }
    }
    let event_loop = EventLoopState::default();
    let rt = runtime(&event_loop)?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, serve_until_shutdown(cfg, Some(event_loop)))
}

/// The event loop's runtime, whose park hooks keep `event_loop` (what a
/// snapshot's threads know of the loop).
fn runtime(event_loop: &EventLoopState) -> std::io::Result<tokio::runtime::Runtime> {
    let (parked, unparked) = (event_loop.clone(), event_loop.clone());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(move || parked.parked())
        .on_thread_unpark(move || unparked.unparked())
        .build()
}

/// `event_loop` is kept by the runtime's park hooks, if it has them.
pub async fn serve_until_shutdown(
    cfg: Config,
    event_loop: Option<EventLoopState>,
) -> std::io::Result<()> {
    if !cfg.dir.is_empty() && cfg.dir != "." {
        std::env::set_current_dir(&cfg.dir).map_err(|e| {
            std::io::Error::new(e.kind(), format!("Can't chdir to '{}': {e}", cfg.dir))
        })?;
    }
    let listeners = bind_all(&cfg).await?;
    tracing::info!(
        "Redoubt {} (Redis {} compatible) started, pid={}, port={}",
        crate::VERSION,
        crate::REDIS_VERSION,
        std::process::id(),
        cfg.port
    );
    let mut executor = Executor::new(cfg);
    executor.event_loop = event_loop;
    if let Err(e) = crate::aof::startup(&mut executor, crate::aof::file_storage()) {
        // As Redis: a persistence file that cannot be loaded stops the start.
        tracing::error!("{e}");
        return Err(std::io::Error::other(e));
    }
    serve_with(executor, listeners).await
}

/// Runs the event loop with a given executor (for instance one whose
/// durability sink a test controls) on listeners already bound, until
/// SHUTDOWN or a signal. Call it inside a `tokio::task::LocalSet`.
pub async fn serve_with(ex: Executor, listeners: Vec<TcpListener>) -> std::io::Result<()> {
    let hz = ex.config.hz.clamp(1, 500);
    let ex = Rc::new(RefCell::new(ex));
    let shared = Rc::new(Shared {
        ex: ex.clone(),
        shutdown: Rc::new(Notify::new()),
        busy_poll: Rc::new(BusyPoll::default()),
    });
    for listener in listeners {
        let shared = shared.clone();
        tokio::task::spawn_local(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        let local = stream.local_addr().unwrap_or(peer);
                        tokio::task::spawn_local(serve(shared.clone(), stream, peer, local));
                    }
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
    }
    let cron_ex = ex.clone();
    tokio::task::spawn_local(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / hz));
        loop {
            tick.tick().await;
            let mut ex = cron_ex.borrow_mut();
            ex.cron();
            crate::aof::cron(&mut ex);
        }
    });
    tokio::task::spawn_local(drive_snapshots(ex.clone()));
    tokio::task::spawn_local(crate::busy_poll::run(ex.clone(), shared.busy_poll.clone()));
    crate::aof::spawn_flusher(&ex);
    tracing::info!("Ready to accept connections");
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let mode = tokio::select! {
            _ = shared.shutdown.notified() => {
                tracing::info!("User requested shutdown...");
                ex.borrow().shutdown.unwrap_or(ShutdownMode::Default)
            }
            _ = sigterm.recv() => {
                tracing::warn!("Received SIGTERM scheduling shutdown...");
                ShutdownMode::Default
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::warn!("Received SIGINT scheduling shutdown...");
                ShutdownMode::Default
            }
        };
        let mut ex = ex.borrow_mut();
        match ex.shutdown_save(mode) {
            Ok(()) => break,
            Err(e) => {
                // As Redis: a failed final save cancels the shutdown.
                tracing::warn!("Error trying to save the DB, can't exit: {e}");
                ex.shutdown = None;
            }
        }
    }
    crate::aof::shutdown(&mut ex.borrow_mut());
    tracing::info!("Redoubt is now ready to exit, bye bye...");
    Ok(())
}

/// Runs a background save's walker between commands. The walker gets short
/// slices: while clients are busy it yields the executor for most of the
/// time (writes first, the snapshot paced behind them); when the server is
/// idle it runs flat out.
async fn drive_snapshots(ex: Rc<RefCell<Executor>>) {
    const SLICE: Duration = Duration::from_micros(250);
    const BUSY_PAUSE: Duration = Duration::from_millis(2);
    // With no client load, while the walker waits for the encoder or the
    // file is being finished: polling at once would spin the executor and
    // take half the encoder's core (an idle save of 2M keys spent as much
    // executor CPU polling as walking). The walker's queue holds several
    // milliseconds of the encoder's work, so this pause does not starve it.
    const IDLE_PAUSE: Duration = Duration::from_millis(1);
    let mut last_commands = 0;
    // While a snapshot runs, the executor asks for a short scheduler slice:
    // then a write that wakes it preempts the snapshot's encoder at once
    // when they share a core (see redoubt_persist::snapshot::sched).
    let mut short_slice = false;
    loop {
        let (running, commands, idle) = {
            let mut ex = ex.borrow_mut();
            let running = ex.snapshot_tick(SLICE);
            (running, ex.stats.total_commands, ex.snapshot_idle())
        };
        if running != short_slice {
            use redoubt_persist::snapshot::sched;
            let ok = sched::set_executor_slice(running.then_some(sched::EXECUTOR_SLICE_NS));
            tracing::debug!("executor slice short={running}: {ok}");
            short_slice = running;
        }
        if !running {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        // A few commands (monitoring, INFO polls) do not make the server
        // busy; a client load does.
        let busy = commands.saturating_sub(last_commands) > 16;
        last_commands = commands;
        if busy {
            tokio::time::sleep(BUSY_PAUSE).await;
        } else if idle {
            tokio::time::sleep(IDLE_PAUSE).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runtime tells the snapshot threads which thread the loop is and
    /// when it goes to sleep.
    #[test]
    fn the_runtime_reports_the_loop_thread_and_its_sleeps() {
        let event_loop = EventLoopState::default();
        let rt = runtime(&event_loop).unwrap();
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
        assert!(event_loop.parks() > 0);
        // SAFETY: no arguments.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
        assert_eq!(event_loop.thread(), Some(tid));
    }
}
