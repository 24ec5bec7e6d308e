//! Snapshot tests of aof-check's output on small generated fixtures, run
//! on the simulated disk.

use redoubt_persist::aof::encode_command;
use redoubt_persist::storage::{SimStorage, Storage};
use redoubt_tools::aof_check::{parse_args, run, Options};
use std::io::Write;
use std::path::Path;

fn cmds(list: &[&[&str]]) -> Vec<u8> {
    let mut v = Vec::new();
    for c in list {
        encode_command(&mut v, c);
    }
    v
}

fn sample() -> Vec<u8> {
    cmds(&[&["SELECT", "0"], &["set", "k", "v"], &["set", "k2", "v2"]])
}

fn put(s: &SimStorage, p: &str, data: &[u8]) {
    let p = Path::new(p);
    if let Some(d) = p.parent() {
        let _ = s.create_dir_all(d);
    }
    let mut f = s.create(p).unwrap();
    f.write_all(data).unwrap();
    f.sync().unwrap();
}

fn check(s: &SimStorage, args: &[&str], stdin: &str) -> String {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let opts: Options = match parse_args("aof-check", &args) {
        Ok(o) => o,
        Err((m, c)) => return format!("{m}\nexit: {c}\n"),
    };
    let mut out = Vec::new();
    let mut input = stdin.as_bytes();
    let code = run(&opts, &mut out, &mut input, s, None);
    format!("{}exit: {code}\n", String::from_utf8_lossy(&out))
}

#[test]
fn valid_single_file() {
    let s = SimStorage::new();
    put(&s, "./ok.aof", &sample());
    insta::assert_snapshot!(check(&s, &["./ok.aof"], ""));
}

#[test]
fn torn_tail_single_file() {
    let s = SimStorage::new();
    let mut d = sample();
    d.truncate(d.len() - 5);
    put(&s, "./torn.aof", &d);
    insta::assert_snapshot!(check(&s, &["./torn.aof"], ""));
}

#[test]
fn damage_in_the_middle() {
    let s = SimStorage::new();
    let mut d = sample();
    d.extend_from_slice(b"xx\r\n");
    d.extend(sample());
    put(&s, "./mid.aof", &d);
    insta::assert_snapshot!(check(&s, &["./mid.aof"], ""));
}

#[test]
fn fix_asks_keeps_backup_and_truncates() {
    let s = SimStorage::new();
    let mut d = sample();
    d.truncate(d.len() - 3);
    put(&s, "./t.aof", &d);
    let refused = check(&s, &["--fix", "./t.aof"], "n\n");
    assert_eq!(s.len(Path::new("./t.aof")).unwrap(), d.len() as u64);
    let fixed = check(&s, &["--fix", "./t.aof"], "y\n");
    let fixed: String = fixed
        .lines()
        .filter(|l| !l.contains("original kept as"))
        .map(|l| format!("{l}\n"))
        .collect();
    insta::assert_snapshot!(format!("{refused}---\n{fixed}"));
    assert_eq!(s.len(Path::new("./t.aof")).unwrap(), 50);
    let names = s.list(Path::new(".")).unwrap();
    assert!(
        names.iter().any(|n| n.starts_with("t.aof.bak-")),
        "{names:?}"
    );
    assert!(check(&s, &["./t.aof"], "").ends_with("exit: 0\n"));
}

#[test]
fn multi_part_directory_and_stats() {
    let s = SimStorage::new();
    put(&s, "./d/appendonly.aof.manifest", b"file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n");
    let mut base = b"#TS:1700000000\r\n".to_vec();
    base.extend(sample());
    put(&s, "./d/appendonly.aof.1.base.aof", &base);
    let mut incr = cmds(&[&["SELECT", "3"], &["MULTI"], &["incr", "n"], &["EXEC"]]);
    incr.extend_from_slice(b"#TS:1700000005\r\n");
    incr.extend(cmds(&[&["del", "k"]]));
    put(&s, "./d/appendonly.aof.1.incr.aof", &incr);
    insta::assert_snapshot!(check(&s, &["--stats", "./d/appendonly.aof.manifest"], ""));
    insta::assert_snapshot!(
        "json",
        check(
            &s,
            &["--json", "--stats", "./d/appendonly.aof.manifest"],
            ""
        )
    );
}

#[test]
fn torn_base_is_not_fixable() {
    let s = SimStorage::new();
    put(&s, "./d/appendonly.aof.manifest", b"file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n");
    let mut base = sample();
    base.truncate(base.len() - 1);
    put(&s, "./d/appendonly.aof.1.base.aof", &base);
    put(&s, "./d/appendonly.aof.1.incr.aof", &sample());
    insta::assert_snapshot!(check(
        &s,
        &["--fix", "--yes", "./d/appendonly.aof.manifest"],
        ""
    ));
}

#[test]
fn truncate_to_timestamp_and_usage() {
    let s = SimStorage::new();
    let mut d = b"#TS:100\r\n".to_vec();
    d.extend(sample());
    d.extend_from_slice(b"#TS:200\r\n");
    d.extend(sample());
    put(&s, "./ts.aof", &d);
    let a = check(&s, &["--truncate-to-timestamp", "50", "./ts.aof"], "");
    let b = check(&s, &["--truncate-to-timestamp", "150", "./ts.aof"], "");
    let c = check(&s, &["--truncate-to-timestamp", "x", "./ts.aof"], "");
    let u = check(&s, &[], "");
    insta::assert_snapshot!(format!("{a}---\n{b}---\n{c}---\n{u}"));
    assert_eq!(
        s.len(Path::new("./ts.aof")).unwrap(),
        9 + sample().len() as u64
    );
}

#[test]
fn rdb_preamble_needs_the_plugin() {
    let s = SimStorage::new();
    let mut d = b"REDIS0010".to_vec();
    d.extend(sample());
    put(&s, "./p.aof", &d);
    insta::assert_snapshot!(check(&s, &["./p.aof"], ""));
}
