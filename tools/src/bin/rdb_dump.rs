//! `rdb-dump`: inspects, converts, compares and salvages RDB files. The
//! logic lives in `redoubt_tools::rdb_dump`.

fn main() {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let code =
        redoubt_tools::rdb_dump::run(std::env::args_os(), &mut stdout.lock(), &mut stderr.lock());
    std::process::exit(code);
}
