//! INFO `# Persistence`, with Redis's field names in Redis's order. A
//! fork-free save has no child process: the `*_cow_*` fields report the
//! memory the snapshot kept alive (serialized bytes waiting for the disk).
//! The AOF fields come from the AOF sink.

use crate::exec::Executor;
use std::fmt::Write;
use std::sync::atomic::Ordering;

pub fn render(ex: &Executor, o: &mut String) -> std::fmt::Result {
    let s = &ex.save;
    let (in_progress, current_secs) = match &s.bgsave {
        Some(b) => (1, b.started.elapsed().as_secs() as i64),
        None => (0, -1),
    };
    let (rw_in_progress, rw_current_secs) = match &s.aof_rewrite {
        Some(j) => (1, j.snap.started.elapsed().as_secs() as i64),
        None if ex.aof_rewrite_running() => (1, 0),
        None => (0, -1),
    };
    // A rewrite waiting for its fsync is reported in progress, not scheduled.
    let rw_scheduled = s.aof_rewrite_scheduled && !ex.aof_rewrite_running();
    // Whichever snapshot runs (they never run together).
    let running = s
        .bgsave
        .as_ref()
        .or(s.aof_rewrite.as_ref().map(|j| &j.snap));
    let (cow, keys_done, keys_total) = match running {
        Some(b) => (b.pending_bytes(), b.keys_done(), ex.ks.total_keys() as u64),
        None => (0, 0, 0),
    };
    let aof = crate::aof::get_ref(ex);
    let rw = aof.map(|a| a.rewrite.clone()).unwrap_or_default();
    let stats = aof.and_then(|a| a.stats.clone());
    let write_ok = stats.as_ref().map(|s| s.error().is_none()).unwrap_or(true);
    write!(
        o,
        "# Persistence\r\nloading:0\r\nasync_loading:0\r\ncurrent_cow_peak:{cow}\r\ncurrent_cow_size:{cow}\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\ncurrent_save_keys_processed:{keys_done}\r\ncurrent_save_keys_total:{keys_total}\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{in_progress}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\nrdb_last_bgsave_time_sec:{}\r\nrdb_current_bgsave_time_sec:{current_secs}\r\nrdb_saves:{}\r\nrdb_last_cow_size:{}\r\nrdb_last_load_keys_expired:{}\r\nrdb_last_load_keys_loaded:{}\r\naof_enabled:{}\r\naof_rewrite_in_progress:{rw_in_progress}\r\naof_rewrite_scheduled:{}\r\naof_last_rewrite_time_sec:{}\r\naof_current_rewrite_time_sec:{rw_current_secs}\r\naof_last_bgrewrite_status:{}\r\naof_rewrites:{}\r\naof_rewrites_consecutive_failures:{}\r\naof_last_write_status:{}\r\naof_last_cow_size:{}\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
        ex.dirty,
        ex.lastsave,
        if s.last_bgsave_ok { "ok" } else { "err" },
        s.last_bgsave_time_sec,
        s.saves,
        s.last_cow,
        s.last_load_expired,
        s.last_load_keys,
        u8::from(ex.config.appendonly),
        u8::from(rw_scheduled),
        rw.last_time_sec,
        if rw.last_ok { "ok" } else { "err" },
        rw.rewrites,
        rw.consecutive_failures,
        if write_ok { "ok" } else { "err" },
        rw.last_cow,
    )?;
    if ex.config.appendonly {
        let (cur, base) = aof.map(|a| a.sizes()).unwrap_or((0, 0));
        let (buf, pending, delayed) = stats
            .map(|s| {
                (
                    s.buffer_len.load(Ordering::Acquire),
                    u8::from(s.fsync_pending.load(Ordering::Acquire)),
                    s.delayed_fsync.load(Ordering::Acquire),
                )
            })
            .unwrap_or((0, 0, 0));
        write!(
            o,
            "aof_current_size:{cur}\r\naof_base_size:{base}\r\naof_pending_rewrite:0\r\naof_buffer_length:{buf}\r\naof_pending_bio_fsync:{pending}\r\naof_delayed_fsync:{delayed}\r\n"
        )?;
    }
    Ok(())
}
