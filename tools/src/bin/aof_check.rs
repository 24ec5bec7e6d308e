//! `aof-check`: checks and repairs append-only files (filled in by the tools work).
use clap::Parser;

/// Check an append-only file or a multi-part AOF directory, as redis-check-aof does.
#[derive(Parser)]
#[command(name = "aof-check", version)]
struct Args {
    /// Truncate a torn tail (keeps a backup of the original).
    #[arg(long)]
    fix: bool,
    /// Truncate the AOF to the last timestamp annotation at or before this Unix time.
    #[arg(long, value_name = "UNIX-TS")]
    truncate_to_timestamp: Option<u64>,
    /// An AOF file, or the manifest of a multi-part AOF directory.
    file: std::path::PathBuf,
}

fn main() {
    let args = Args::parse();
    eprintln!(
        "aof-check: checking {} is not implemented yet",
        args.file.display()
    );
    std::process::exit(2);
}
