//! `rdb-dump`: inspects, converts and salvages RDB files (filled in by the tools work).
use clap::Parser;

/// Inspect, convert and salvage Redis dump files.
#[derive(Parser)]
#[command(name = "rdb-dump", version)]
struct Args {
    /// Subcommand: check, json, resp, memory, stats, convert, salvage, diff.
    command: String,
    /// Input file(s).
    files: Vec<std::path::PathBuf>,
}

fn main() {
    let args = Args::parse();
    eprintln!("rdb-dump: '{}' is not implemented yet", args.command);
    std::process::exit(2);
}
