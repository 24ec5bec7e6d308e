//! INFO `# Persistence`: Redis's field names, in Redis's order; the AOF
//! fields come from the AOF sink, the RDB ones from the snapshot work as it
//! lands.

use crate::exec::Executor;
use std::fmt::Write;
use std::sync::atomic::Ordering;

pub fn render(ex: &Executor, o: &mut String) -> std::fmt::Result {
    let aof = crate::aof::get_ref(ex);
    let rw = aof.map(|a| a.rewrite.clone()).unwrap_or_default();
    let stats = aof.and_then(|a| a.stats.clone());
    let write_ok = stats.as_ref().map(|s| s.error().is_none()).unwrap_or(true);
    write!(
        o,
        "# Persistence\r\nloading:0\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\ncurrent_save_keys_processed:0\r\ncurrent_save_keys_total:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:ok\r\nrdb_last_bgsave_time_sec:-1\r\nrdb_current_bgsave_time_sec:-1\r\nrdb_saves:0\r\nrdb_last_cow_size:0\r\nrdb_last_load_keys_expired:0\r\nrdb_last_load_keys_loaded:0\r\naof_enabled:{}\r\naof_rewrite_in_progress:0\r\naof_rewrite_scheduled:0\r\naof_last_rewrite_time_sec:{}\r\naof_current_rewrite_time_sec:-1\r\naof_last_bgrewrite_status:{}\r\naof_rewrites:{}\r\naof_rewrites_consecutive_failures:{}\r\naof_last_write_status:{}\r\naof_last_cow_size:0\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
        ex.dirty,
        ex.lastsave,
        u8::from(ex.config.appendonly),
        rw.last_time_sec,
        if rw.last_ok { "ok" } else { "err" },
        rw.rewrites,
        rw.consecutive_failures,
        if write_ok { "ok" } else { "err" },
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
