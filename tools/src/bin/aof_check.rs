//! `aof-check [--fix|--truncate-to-timestamp <ts>] [--yes] [--json] [--stats] <file.aof|manifest>`:
//! redis-check-aof's behaviour and exit codes, with a fuller diagnosis.

use redoubt_persist::storage::FileStorage;

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let argv0 = argv.first().cloned().unwrap_or_else(|| "aof-check".into());
    let opts = match redoubt_tools::aof_check::parse_args(&argv0, &argv[1..]) {
        Ok(o) => o,
        Err((msg, code)) => {
            println!("{msg}");
            std::process::exit(code);
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let code = redoubt_tools::aof_check::run(&opts, &mut out, &mut input, &FileStorage, None);
    std::process::exit(code);
}
