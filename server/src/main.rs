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
