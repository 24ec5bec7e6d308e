//! INFO, with Redis's section and field names, and memory accounting.

use crate::commands::Ctx;
use crate::resp::Reply;
use bytes::Bytes;
use redoubt_persist::{Entry, Value};
use std::fmt::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes currently allocated by the process, as jemalloc (the server's
/// allocator, as Redis's) counts them; the RSS where jemalloc is not the
/// global allocator (library users, tests).
pub fn used_memory() -> usize {
    let _ = tikv_jemalloc_ctl::epoch::advance();
    let now = match tikv_jemalloc_ctl::stats::allocated::read() {
        Ok(n) if n > 0 => n,
        _ => rss_bytes(),
    };
    PEAK.fetch_max(now, Ordering::Relaxed);
    now
}

/// jemalloc's counters (zeros where it is not the global allocator).
#[derive(Debug, Default, Clone, Copy)]
pub struct AllocatorStats {
    pub allocated: usize,
    pub active: usize,
    pub resident: usize,
    pub retained: usize,
}

pub fn allocator_stats() -> AllocatorStats {
    use tikv_jemalloc_ctl::stats;
    let _ = tikv_jemalloc_ctl::epoch::advance();
    AllocatorStats {
        allocated: stats::allocated::read().unwrap_or(0),
        active: stats::active::read().unwrap_or(0),
        resident: stats::resident::read().unwrap_or(0),
        retained: stats::retained::read().unwrap_or(0),
    }
}

static PEAK: AtomicUsize = AtomicUsize::new(0);

pub fn peak_memory() -> usize {
    PEAK.load(Ordering::Relaxed).max(used_memory())
}

/// Resident set size from /proc (0 where unavailable).
pub fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<usize>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// An estimate of the memory one key uses (MEMORY USAGE).
pub fn entry_memory(e: &Entry) -> usize {
    // The entry's allocation (header and key) plus its table slot.
    let slot = std::mem::size_of_val(e) + 8;
    let b = |x: &Bytes| x.len() + 16;
    let v = match &e.value {
        Value::Str(s) => b(s),
        Value::List(l) => l.items.iter().map(b).sum::<usize>() + 32,
        Value::Hash(h) => h.map.iter().map(|(k, v)| b(k) + b(v) + 16).sum::<usize>() + 64,
        Value::Set(s) => s.members.iter().map(|m| b(m) + 8).sum::<usize>() + 64,
        Value::ZSet(z) => z.iter().map(|m| 2 * b(&m.member) + 40).sum::<usize>() + 64,
        Value::Stream(s) => {
            // The same estimate as when every field and value was its own
            // string, so MEMORY USAGE answers as before.
            let s_len = |x: &[u8]| x.len() + 16;
            s.entries
                .iter()
                .map(|e| 32 + e.fields().map(|(k, v)| s_len(k) + s_len(v)).sum::<usize>())
                .sum::<usize>()
                + 128
        }
    };
    slot + v
}

fn human(bytes: usize) -> String {
    let b = bytes as f64;
    if b < 1024.0 {
        format!("{bytes}B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.2}K", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", b / 1024.0 / 1024.0)
    } else {
        format!("{:.2}G", b / 1024.0 / 1024.0 / 1024.0)
    }
}

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
];
const ALL_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "commandstats",
    "errorstats",
    "cluster",
    "keyspace",
];

pub fn info(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut wanted: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    if wanted.is_empty() || wanted.iter().any(|w| w == "default") {
        wanted.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string()));
    }
    if wanted.iter().any(|w| w == "all" || w == "everything") {
        wanted.extend(ALL_SECTIONS.iter().map(|s| s.to_string()));
    }
    let mut out = String::new();
    for section in ALL_SECTIONS {
        if !wanted.iter().any(|w| w == section) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        render_section(ctx, section, &mut out);
    }
    Reply::Verbatim(out)
}

fn render_section(ctx: &mut Ctx, section: &str, o: &mut String) {
    let ex = &*ctx.ex;
    let up = ex.uptime().as_secs();
    // `write!` into a String cannot fail.
    let _ = match section {
        "server" => write!(
            o,
            "# Server\r\nredis_version:{}\r\nredoubt_version:{}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:{}\r\nconfigured_hz:{}\r\nlru_clock:{}\r\nexecutable:{}\r\nconfig_file:\r\nio_threads_active:0\r\n",
            crate::REDIS_VERSION,
            crate::VERSION,
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::process::id(),
            ex.run_id,
            ex.config.port,
            crate::util::now_us(),
            up,
            up / 86400,
            ex.config.hz,
            ex.config.hz,
            (crate::util::now_ms() / 1000) & 0xFFFFFF,
            std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
        ),
        "clients" => write!(
            o,
            "# Clients\r\nconnected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:{}\r\ntracking_clients:0\r\nclients_in_timeout_table:{}\r\n",
            ex.clients.len(),
            ex.config.maxclients,
            ex.blocked_clients,
            ex.blocked_clients,
        ),
        "memory" => {
            let used = used_memory();
            let rss = rss_bytes();
            write!(
                o,
                "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{}\r\nused_memory_peak_human:{}\r\nused_memory_dataset:{used}\r\nmaxmemory:{}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\nmem_fragmentation_ratio:{:.2}\r\nmem_allocator:jemalloc-5.3.0\r\nlazyfree_pending_objects:0\r\n",
                human(used),
                human(rss),
                peak_memory(),
                human(peak_memory()),
                ex.config.maxmemory,
                human(ex.config.maxmemory as usize),
                ex.config.maxmemory_policy,
                if used > 0 { rss as f64 / used as f64 } else { 0.0 },
            )
        }
        "persistence" => crate::persistence_info::render(ex, o),
        "stats" => {
            let expired: u64 = ex.ks.dbs.iter().map(|d| d.expired_count).sum();
            write!(
                o,
                "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:0\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:0\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\ntotal_error_replies:{}\r\n",
                ex.stats.total_connections,
                ex.stats.total_commands,
                ex.stats.net_input_bytes,
                ex.stats.net_output_bytes,
                ex.stats.rejected_connections,
                expired,
                ex.stats.keyspace_hits,
                ex.stats.keyspace_misses,
                ex.pubsub.channel_count(),
                ex.pubsub.pattern_count(),
                ex.stats.total_error_replies,
            )
        }
        "replication" => write!(
            o,
            "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:0000000000000000000000000000000000000000\r\nmaster_repl_offset:0\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:0\r\nrepl_backlog_size:1048576\r\nrepl_backlog_first_byte_offset:0\r\nrepl_backlog_histlen:0\r\n",
            ex.run_id
        ),
        "cpu" => {
            let (user, sys) = cpu_times();
            write!(
                o,
                "# CPU\r\nused_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\n"
            )
        }
        "modules" => write!(o, "# Modules\r\n"),
        "errorstats" => write!(o, "# Errorstats\r\n"),
        "cluster" => write!(o, "# Cluster\r\ncluster_enabled:0\r\n"),
        "commandstats" => {
            let _ = write!(o, "# Commandstats\r\n");
            for (i, st) in ex.cmdstats.iter().enumerate() {
                if st.calls == 0 && st.rejected == 0 {
                    continue;
                }
                let per = if st.calls > 0 {
                    st.usec as f64 / st.calls as f64
                } else {
                    0.0
                };
                let _ = write!(
                    o,
                    "cmdstat_{}:calls={},usec={},usec_per_call={:.2},rejected_calls={},failed_calls={}\r\n",
                    ex.specs[i].name, st.calls, st.usec, per, st.rejected, st.failed
                );
            }
            Ok(())
        }
        "keyspace" => {
            let _ = write!(o, "# Keyspace\r\n");
            for (i, db) in ex.ks.dbs.iter().enumerate() {
                if !db.is_empty() {
                    let _ = write!(
                        o,
                        "db{i}:keys={},expires={},avg_ttl=0\r\n",
                        db.len(),
                        db.volatile_len()
                    );
                }
            }
            Ok(())
        }
        _ => Ok(()),
    };
}

/// User and system CPU seconds of this process.
fn cpu_times() -> (f64, f64) {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; it was zeroed first.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return (0.0, 0.0);
    }
    // SAFETY: getrusage returned success, so the struct is initialised.
    let u = unsafe { usage.assume_init() };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(u.ru_utime), t(u.ru_stime))
}
