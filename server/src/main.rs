//! `redoubt-server [/path/to/redoubt.conf] [--directive value ...]`

use redoubt_server::config::Config;

// jemalloc, as Redis uses: size classes without per-allocation headers keep
// small keys and values compact.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-v" || a == "--version") {
        println!(
            "Redoubt server v={} (Redis {} compatible)",
            redoubt_server::VERSION,
            redoubt_server::REDIS_VERSION
        );
        return;
    }
    // As Redis does (jemalloc-bg-thread yes): a background thread gives
    // freed pages back to the OS on jemalloc's decay schedule even while
    // the server is idle; without it they stay resident until the next
    // allocations (after a save under load, RSS stayed 10% up at rest).
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!("jemalloc background thread not started: {e}");
    }
    let cfg = match Config::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    redoubt_server::run::init_logging(&cfg);
    if let Err(e) = redoubt_server::run::run(cfg) {
        tracing::error!("{e}");
        std::process::exit(1);
    }
}
