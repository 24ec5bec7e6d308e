//! rdb-dump: snapshots of every subcommand on real Redis 7.0.15 fixtures
//! (and shared-corpus files when present), exit codes, salvage on damage at
//! known offsets, no panics on random damage, and round trips through a
//! real Redis 7.0.15 when `redis-server` is on PATH.

use rand::{Rng, SeedableRng};
use redoubt_persist::rdb::{DecodeOptions, Decoder, Item};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/redis-7.0.15")
        .join(name)
}

/// Runs rdb-dump in-process: (exit code, stdout, stderr).
fn rd(args: &[&str]) -> (i32, String, String) {
    let mut argv = vec!["rdb-dump"];
    argv.extend_from_slice(args);
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = redoubt_tools::rdb_dump::run(argv, &mut out, &mut err);
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// Output with the fixture directory made relative, plus the exit code.
fn shown(args: &[&str]) -> String {
    let (code, out, err) = rd(args);
    let dir = fixture("").display().to_string();
    format!("{out}{err}exit: {code}\n").replace(&dir, "")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ------------------------------------------------------------- snapshots

#[test]
fn check_snapshots() {
    let small = fixture("small.rdb");
    let all = fixture("all-types.rdb");
    let nock = fixture("all-types-nocompress-nochecksum.rdb");
    let now = "--now-ms=1700000000000";
    insta::assert_snapshot!("check_small", shown(&["check", s(&small), now]));
    insta::assert_snapshot!("check_all_types", shown(&["check", s(&all), now]));
    insta::assert_snapshot!(
        "check_nochecksum_filtered",
        shown(&["check", s(&nock), now, "--db", "0", "--type", "hash"])
    );
    insta::assert_snapshot!("check_lru", shown(&["check", s(&fixture("lru.rdb")), now]));
}

#[test]
fn check_reports_damage_with_offset_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = std::fs::read(fixture("small.rdb")).unwrap();
    // Truncated inside the hash "h" (the first key).
    let p = dir.path().join("trunc.rdb");
    std::fs::write(&p, &data[..100]).unwrap();
    let (code, out, _) = rd(&["check", s(&p), "--now-ms=0"]);
    assert_eq!(code, 1);
    let out = out.replace(s(dir.path()), "");
    // Bad checksum.
    let mut bad = data.clone();
    let n = bad.len();
    bad[n - 3] ^= 0x55;
    let q = dir.path().join("crc.rdb");
    std::fs::write(&q, &bad).unwrap();
    let (code2, out2, _) = rd(&["check", s(&q), "--now-ms=0"]);
    assert_eq!(code2, 1);
    let out2 = out2.replace(s(dir.path()), "");
    // Not an RDB at all.
    let r = dir.path().join("junk.rdb");
    std::fs::write(&r, b"hello world").unwrap();
    let (code3, out3, _) = rd(&["check", s(&r)]);
    assert_eq!(code3, 1);
    let out3 = out3.replace(s(dir.path()), "");
    insta::assert_snapshot!(format!("{out}---\n{out2}---\n{out3}"));
}

#[test]
fn json_snapshots() {
    let small = fixture("small.rdb");
    insta::assert_snapshot!("json_small", shown(&["json", s(&small)]));
    insta::assert_snapshot!(
        "json_lines_filtered",
        shown(&[
            "json",
            "--lines",
            s(&fixture("all-types.rdb")),
            "--key",
            "^(str|set):",
            "--type",
            "set"
        ])
    );
    insta::assert_snapshot!(
        "json_lines_lfu",
        shown(&["json", "--lines", s(&fixture("lfu.rdb"))])
    );
}

#[test]
fn json_escapes_binary_keys_and_values() {
    use redoubt_persist::rdb::{RdbWriter, SaveOptions};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bin.rdb");
    let f = std::fs::File::create(&p).unwrap();
    let mut w = RdbWriter::new(
        f,
        SaveOptions {
            ctime: Some(0),
            ..SaveOptions::default()
        },
    )
    .unwrap();
    w.select_db(2, 2, 0).unwrap();
    w.write_entry(
        b"k\xff\x00",
        &redoubt_persist::Value::str_from(b"\"q\"\n\\"),
        0,
    )
    .unwrap();
    w.write_entry(
        b"\xe2\x82\xac",
        &redoubt_persist::Value::str_from(b"\x01\xfe"),
        0,
    )
    .unwrap();
    w.finish().unwrap();
    insta::assert_snapshot!(shown(&["json", "--lines", s(&p)]).replace(s(dir.path()), ""));
}

#[test]
fn resp_snapshots() {
    let small = fixture("small.rdb");
    insta::assert_snapshot!("resp_small", shown(&["resp", s(&small)]));
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().join("r.resp");
    let (code, _, _) = rd(&[
        "resp",
        "--restore",
        s(&small),
        "--key",
        "^(counter|greeting)$",
        "-o",
        s(&o),
    ]);
    assert_eq!(code, 0);
    let out = std::fs::read(&o).unwrap();
    let esc = out.escape_ascii().to_string().replace("\\r\\n", "\\r\\n\n");
    insta::assert_snapshot!("resp_restore", esc);
}

#[test]
fn memory_snapshots() {
    let all = fixture("all-types.rdb");
    insta::assert_snapshot!("memory_all_types", shown(&["memory", s(&all)]));
    insta::assert_snapshot!(
        "memory_largest",
        shown(&["memory", s(&all), "--largest", "3"])
    );
}

#[test]
fn stats_snapshot() {
    let all = fixture("all-types.rdb");
    insta::assert_snapshot!(shown(&[
        "stats",
        s(&all),
        "--top",
        "5",
        "--now-ms=4102444700000"
    ]));
}

#[test]
fn diff_snapshot_and_exit_codes() {
    let all = fixture("all-types.rdb");
    let nock = fixture("all-types-nocompress-nochecksum.rdb");
    let small = fixture("small.rdb");
    // Same data, different file options: no difference, exit 0.
    let (code, out, _) = rd(&["diff", s(&all), s(&nock)]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = rd(&["diff", s(&small), s(&all), "--db", "1"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("only in A: 0, only in B: 2, changed: 0"),
        "{out}"
    );
    // B = A through an AOF with a few more commands applied.
    let dir = tempfile::tempdir().unwrap();
    let aof = dir.path().join("a.aof");
    assert_eq!(rd(&["convert", s(&all), "--to", "aof", "-o", s(&aof)]).0, 0);
    let mut extra = Vec::new();
    for c in [
        &["SELECT", "0"][..],
        &["SET", "str:small", "changed"],
        &["PEXPIREAT", "str:int8", "4102444800000"],
        &["DEL", "set:big"],
        &["SET", "newkey", "v"],
        &["SADD", "set:strings", "one-more"],
        &["DEL", "hash:small"],
        &["SET", "hash:small", "now a string"],
    ] {
        redoubt_persist::aof::encode_command(&mut extra, c);
    }
    let mut data = std::fs::read(&aof).unwrap();
    data.extend(extra);
    std::fs::write(&aof, data).unwrap();
    let b = dir.path().join("b.rdb");
    assert_eq!(rd(&["convert", s(&aof), "--to", "rdb", "-o", s(&b)]).0, 0);
    let out = shown(&["diff", s(&all), s(&b), "--db", "0"]).replace(s(dir.path()), "");
    insta::assert_snapshot!(out);
}

#[test]
fn usage_and_output_rules() {
    let small = fixture("small.rdb");
    let (code, _, err) = rd(&["frobnicate"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = rd(&["json"]);
    assert_eq!(code, 2);
    let (code, _, err) = rd(&["json", s(&small), "--key", "("]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("regular expression"), "{err}");
    let (code, out, _) = rd(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("salvage"));
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().join("out.json");
    assert_eq!(rd(&["json", s(&small), "-o", s(&o)]).0, 0);
    let (code, _, err) = rd(&["json", s(&small), "-o", s(&o)]);
    assert_eq!(code, 1);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(rd(&["json", s(&small), "-o", s(&o), "--force"]).0, 0);
    // An input is never an output, even with --force.
    let copy = dir.path().join("in.rdb");
    std::fs::copy(&small, &copy).unwrap();
    let before = std::fs::read(&copy).unwrap();
    let (code, _, err) = rd(&["json", s(&copy), "-o", s(&copy), "--force"]);
    assert_eq!(code, 1);
    assert!(err.contains("input"), "{err}");
    let (code, _, _) = rd(&["salvage", s(&copy), "-o", s(&copy), "--force"]);
    assert_eq!(code, 1);
    assert_eq!(std::fs::read(&copy).unwrap(), before);
}

#[test]
fn convert_versions_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let all = fixture("all-types.rdb");
    let v12 = dir.path().join("v12.rdb");
    let (code, out, err) = rd(&[
        "convert",
        s(&all),
        "--to",
        "rdb",
        "--rdb-version",
        "12",
        "-o",
        s(&v12),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, chk, _) = rd(&["check", s(&v12), "--now-ms=0"]);
    assert!(
        chk.contains("RDB version 12") && chk.contains("stream-v3=4"),
        "{chk}"
    );
    let back = dir.path().join("v10.rdb");
    assert_eq!(
        rd(&["convert", s(&v12), "--to", "rdb", "-o", s(&back)]).0,
        0
    );
    assert_eq!(rd(&["diff", s(&all), s(&back)]).0, 0);
    // Version 9 cannot be written; nothing is left behind.
    let v9 = dir.path().join("v9.rdb");
    let (code, _, err) = rd(&[
        "convert",
        s(&all),
        "--to",
        "rdb",
        "--rdb-version",
        "9",
        "-o",
        s(&v9),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("version 9"), "{err}");
    assert!(!v9.exists());
    // Hash field TTLs cannot go below v12: refused with the key named.
    let hfe = hfe_dump(dir.path());
    let down = dir.path().join("down.rdb");
    let (code, _, err) = rd(&["convert", s(&hfe), "--to", "rdb", "-o", s(&down)]);
    assert_eq!(code, 1);
    insta::assert_snapshot!("convert_refuses_field_ttls", err);
    assert!(!down.exists());
    assert!(!dir.path().join("down.rdb.partial").exists());
    // ...but the filters can leave that key out.
    let (code, _, err) = rd(&[
        "convert",
        s(&hfe),
        "--to",
        "rdb",
        "-o",
        s(&down),
        "--type",
        "string",
    ]);
    assert_eq!(code, 0, "{err}");
}

/// A v12 dump with a hash whose field has a TTL, plus a string.
fn hfe_dump(dir: &Path) -> PathBuf {
    use redoubt_persist::rdb::{RdbWriter, SaveOptions};
    use redoubt_persist::value::HashValue;
    let p = dir.join("hfe.rdb");
    let f = std::fs::File::create(&p).unwrap();
    let mut w = RdbWriter::new(
        f,
        SaveOptions {
            version: 12,
            ctime: Some(0),
            ..SaveOptions::default()
        },
    )
    .unwrap();
    let mut h = HashValue::default();
    h.map.insert("f1".into(), "v1".into());
    h.map.insert("f2".into(), "v2".into());
    let mut t = std::collections::HashMap::new();
    t.insert(bytes::Bytes::from("f1"), 4102444800000u64);
    h.field_expiry = Some(Box::new(t));
    w.select_db(0, 2, 0).unwrap();
    w.write_entry(b"plain", &redoubt_persist::Value::str_from(b"x"), 0)
        .unwrap();
    w.write_entry(b"hfe", &redoubt_persist::Value::Hash(Box::new(h)), 0)
        .unwrap();
    w.finish().unwrap();
    p
}

#[test]
fn convert_rdb_aof_round_trips_offline() {
    let dir = tempfile::tempdir().unwrap();
    let all = fixture("all-types.rdb");
    let aof = dir.path().join("one.aof");
    assert_eq!(rd(&["convert", s(&all), "--to", "aof", "-o", s(&aof)]).0, 0);
    let d = dir.path().join("aofdir");
    let (code, out, _) = rd(&["convert", s(&all), "--to", "aof-dir", "-o", s(&d)]);
    assert_eq!(code, 0);
    insta::assert_snapshot!(
        "convert_aof_dir",
        format!(
            "{}{}",
            out.replace(s(dir.path()), "")
                .replace(&fixture("").display().to_string(), ""),
            std::fs::read_to_string(d.join("appendonly.aof.manifest")).unwrap()
        )
    );
    for (input, exact) in [(aof.clone(), false), (d.clone(), true)] {
        let back = dir.path().join(format!("back-{}.rdb", exact));
        let (code, _, err) = rd(&["convert", s(&input), "--to", "rdb", "-o", s(&back)]);
        assert_eq!(code, 0, "{err}");
        let (code, out, _) = rd(&["diff", s(&all), s(&back)]);
        if exact {
            assert_eq!(code, 0, "{out}");
        } else {
            // Consumer seen times cannot be expressed as commands.
            assert!(
                out.contains("changed: 1,") && out.contains("stream:small"),
                "{out}"
            );
        }
    }
    // An AOF with a command the applier does not know is refused by name.
    let bad = dir.path().join("bad.aof");
    std::fs::write(
        &bad,
        b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$7\r\nLINSERT\r\n$1\r\nk\r\n$1\r\nv\r\n",
    )
    .unwrap();
    let (code, _, err) = rd(&[
        "convert",
        s(&bad),
        "--to",
        "rdb",
        "-o",
        s(&dir.path().join("x.rdb")),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("unsupported command 'LINSERT'"), "{err}");
}

// ------------------------------------------------------------- salvage

/// (start, end, db, key) of every key record.
fn key_records(data: &[u8]) -> Vec<(u64, u64, u64, Vec<u8>)> {
    let mut d = Decoder::new(data, Some(data.len() as u64), DecodeOptions::default()).unwrap();
    let mut v = Vec::new();
    let mut db = 0;
    loop {
        let start = d.offset();
        match d.next_item().unwrap() {
            Some(Item::Entry(e)) => v.push((start, d.offset(), db, e.key)),
            Some(Item::SelectDb(n)) => db = n,
            Some(Item::End(_)) | None => break,
            _ => {}
        }
    }
    v
}

/// Position of the type byte of a key record (after an EXPIRETIME_MS).
fn type_pos(data: &[u8], start: u64) -> usize {
    let st = start as usize;
    if data[st] == 252 {
        st + 9
    } else {
        st
    }
}

fn keys_of(path: &Path) -> BTreeSet<(u64, Vec<u8>)> {
    let data = std::fs::read(path).unwrap();
    key_records(&data)
        .into_iter()
        .map(|(_, _, db, k)| (db, k))
        .collect()
}

/// Salvages `data`; returns the recovered (db, key) set, the report, the
/// exit code, after checking the output is a sane dump whose key count is
/// the one the report gives.
fn salvage(dir: &Path, name: &str, data: &[u8]) -> (BTreeSet<(u64, Vec<u8>)>, String, i32) {
    let inp = dir.join(format!("{name}.in.rdb"));
    let out = dir.join(format!("{name}.out.rdb"));
    std::fs::write(&inp, data).unwrap();
    let (code, rep, err) = rd(&["salvage", s(&inp), "-o", s(&out)]);
    assert!(err.is_empty(), "{err}");
    let (ck, ckout, _) = rd(&["check", s(&out), "--now-ms=0"]);
    assert_eq!(ck, 0, "salvaged output must be sane:\n{ckout}");
    let keys = keys_of(&out);
    assert!(
        rep.contains(&format!("recovered keys: {} (", keys.len())),
        "{rep}"
    );
    (keys, rep.replace(s(dir), ""), code)
}

#[test]
fn salvage_recovers_exactly_what_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let data = std::fs::read(fixture("all-types.rdb")).unwrap();
    let recs = key_records(&data);
    let all: BTreeSet<(u64, Vec<u8>)> = recs.iter().map(|r| (r.2, r.3.clone())).collect();
    assert_eq!(all.len(), 40);

    // Intact input: everything, exit 0.
    let (keys, rep, code) = salvage(dir.path(), "intact", &data);
    assert_eq!((keys.clone(), code), (all.clone(), 0), "{rep}");

    // Truncated inside key #20: keys 0..20 survive.
    let (st, en, _, _) = &recs[20];
    let cut = (st + en) / 2;
    let (keys, rep, code) = salvage(dir.path(), "trunc", &data[..cut as usize]);
    let want: BTreeSet<_> = recs[..20].iter().map(|r| (r.2, r.3.clone())).collect();
    assert_eq!(keys, want, "{rep}");
    assert_eq!(code, 1);
    assert!(rep.contains("no EOF marker"), "{rep}");

    // A zeroed range inside several compact values (listpacks, quicklist
    // nodes) loses exactly those keys.
    let mut damaged = data.clone();
    let mut lost = BTreeSet::new();
    for (st, en, db, key) in &recs {
        let k = String::from_utf8_lossy(key);
        // (Zeros inside a stream can read as a valid empty stream: such
        // damage only the CRC sees, so streams are not used here.)
        if !(k.starts_with("hash:small") || k.starts_with("list:")) {
            continue;
        }
        // Past the type byte and key name (+ a few bytes), up to 4 bytes
        // before the end.
        let from = type_pos(&data, *st) + 1 + 1 + key.len() + 3;
        let to = (*en as usize).saturating_sub(4);
        if to <= from + 4 {
            continue;
        }
        damaged[from..to].fill(0);
        lost.insert((*db, key.clone()));
    }
    assert!(lost.len() >= 3, "{lost:?}");
    let (keys, rep, code) = salvage(dir.path(), "zeroed", &damaged);
    let want: BTreeSet<_> = all.difference(&lost).cloned().collect();
    assert_eq!(keys, want, "{rep}");
    assert_eq!(code, 1);

    // Bit flips in a listpack header (its total-bytes field) of two keys.
    let mut flipped = data.clone();
    let mut lost = BTreeSet::new();
    for (st, _, db, key) in recs
        .iter()
        .filter(|r| r.3 == b"hash:small" || r.3 == b"hash:volatile")
    {
        // type, key len, key, blob length byte, then the listpack's u32.
        let len_at = type_pos(&data, *st) + 1 + 1 + key.len();
        assert!(data[len_at] < 64, "a short raw blob");
        flipped[len_at + 1] ^= 0x40;
        lost.insert((*db, key.clone()));
    }
    assert_eq!(lost.len(), 2);
    let (keys, rep, _) = salvage(dir.path(), "flipped", &flipped);
    let want: BTreeSet<_> = all.difference(&lost).cloned().collect();
    assert_eq!(keys, want, "{rep}");
    insta::assert_snapshot!("salvage_flipped_report", rep);

    // A flipped bit in a plain string value is only caught by the CRC:
    // everything is recovered, the report says so, exit 1.
    let mut crc = data.clone();
    let (_, en, _, key) = recs.iter().find(|r| r.3 == b"str:random").unwrap();
    crc[*en as usize - 10] ^= 1;
    let (keys, rep, code) = salvage(dir.path(), "crc", &crc);
    assert_eq!(keys, all, "{rep} {key:?}");
    assert_eq!(code, 1);
    assert!(rep.contains("MISMATCH"), "{rep}");
}

#[test]
fn random_damage_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0x5eed);
    for name in ["small.rdb", "all-types.rdb", "lru.rdb"] {
        let data = std::fs::read(fixture(name)).unwrap();
        let all = keys_of(&fixture(name));
        for i in 0..40 {
            let mut d = data.clone();
            match i % 3 {
                0 => d.truncate(rng.gen_range(0..d.len())),
                1 => {
                    for _ in 0..rng.gen_range(1..6) {
                        let at = rng.gen_range(0..d.len());
                        d[at] ^= 1 << rng.gen_range(0..8);
                    }
                }
                _ => {
                    let a = rng.gen_range(0..d.len());
                    let b = (a + rng.gen_range(1..200)).min(d.len());
                    d[a..b].fill(if i % 2 == 0 { 0 } else { 0xff });
                }
            }
            let p = dir.path().join("r.rdb");
            std::fs::write(&p, &d).unwrap();
            let (code, _, _) = rd(&["check", s(&p)]);
            assert!(code == 0 || code == 1);
            let out = dir.path().join("r.out.rdb");
            let (code, rep, err) = rd(&["salvage", s(&p), "-o", s(&out), "--force"]);
            assert!(code == 0 || code == 1, "{err}");
            let (ck, ckout, _) = rd(&["check", s(&out)]);
            assert_eq!(ck, 0, "{rep}\n{ckout}");
            // When nothing was lost and the checksum held, salvage
            // invented no key.
            let got = keys_of(&out);
            if rep.contains("lost: 0 region") && rep.contains("checksum: ok") {
                assert!(got.is_subset(&all), "{rep}");
            }
        }
    }
}

// ------------------------------------------------------------- corpus

fn corpus() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("REDOUBT_CORPUS") {
        return Some(PathBuf::from(p));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for rel in ["../shared/corpus", "../../shared/corpus"] {
        let p = root.join(rel);
        if p.join("INDEX.md").exists() {
            return Some(p);
        }
    }
    eprintln!("shared corpus not found (set REDOUBT_CORPUS): corpus tests skipped");
    None
}

#[test]
fn corpus_files() {
    let Some(c) = corpus() else { return };
    let mut all = String::new();
    for (f, args) in [
        (
            "dragonfly/redis6_small.rdb",
            vec!["check", "--now-ms=1700000000000"],
        ),
        ("librdb/invalid_chksum_v8.rdb", vec!["check", "--now-ms=0"]),
        ("redis/corrupt_ziplist.rdb", vec!["check", "--now-ms=0"]),
        ("librdb/future_v19.rdb", vec!["check"]),
        ("hdt3213-rdb/hash_with_hfe.rdb", vec!["json", "--lines"]),
        (
            "dragonfly/redis_json.rdb",
            vec!["json", "--lines", "--key", "json-str"],
        ),
        ("hdt3213-rdb/memory.rdb", vec!["memory"]),
        ("dragonfly/RDB_TYPE_STREAM_LISTPACKS_3.rdb", vec!["resp"]),
    ] {
        let p = c.join(f);
        if !p.exists() {
            eprintln!("{f} missing from the corpus: skipped");
            continue;
        }
        let mut a: Vec<&str> = vec![args[0], s(&p)];
        a.extend_from_slice(&args[1..]);
        all.push_str(&format!("=== {} {f}\n", args.join(" ")));
        all.push_str(&shown(&a).replace(&format!("{}/", c.display()), ""));
    }
    insta::assert_snapshot!(all);
    // Every dump of the corpus: check and salvage terminate without panic,
    // and salvage's output is sane.
    let dir = tempfile::tempdir().unwrap();
    let mut stack = vec![c.clone()];
    let mut n = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rdb") {
                n += 1;
                let (code, _, _) = rd(&["check", s(&p)]);
                assert!(code == 0 || code == 1);
                let out = dir.path().join("c.rdb");
                let (code, _, _) = rd(&["salvage", s(&p), "-o", s(&out), "--force"]);
                assert!(code == 0 || code == 1);
                assert_eq!(rd(&["check", s(&out)]).0, 0, "{}", p.display());
            }
        }
    }
    assert!(n > 100);
}

// ------------------------------------------------------------- real Redis

struct Redis {
    port: u16,
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Starts redis-server in a fresh dir with extra args; None (and a
    /// message) when redis-server is not installed.
    fn start(extra: &[&str], setup: impl FnOnce(&Path)) -> Option<Redis> {
        if std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("redis-server not on PATH: real-Redis round trips skipped");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path());
        // A port the kernel just handed out is free unless another process
        // takes it in the meantime: then redis-server exits, and we retry.
        for _attempt in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .unwrap();
            let mut child = std::process::Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                ])
                .args(["--dir", s(dir.path())])
                .args(["--logfile", "redis.log"])
                .args(extra)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            // Up to 20 s: the machine may be busy with other test binaries.
            for _ in 0..400 {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                // Still alive after answering: the PONG was ours.
                if cli_ping(port) && matches!(child.try_wait(), Ok(None)) {
                    return Some(Redis { port, child, dir });
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.path().join("redis.log")).unwrap_or_default();
            eprintln!("redis-server on port {port} did not start; log:\n{log}");
        }
        panic!("redis-server did not start");
    }

    fn cli(&self, args: &[&str]) -> String {
        let o = std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn pipe(&self, file: &Path) -> String {
        let o = std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--pipe"])
            .stdin(std::fs::File::open(file).unwrap())
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// SAVEs and returns the dump path.
    fn save(&self) -> PathBuf {
        assert_eq!(self.cli(&["SAVE"]).trim(), "OK");
        self.dir.path().join("dump.rdb")
    }
}

/// Whether a server on `port` answers PING.
fn cli_ping(port: u16) -> bool {
    std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "PING"])
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"PONG"))
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.cli(&["SHUTDOWN", "NOSAVE"]);
        let _ = self.child.wait();
    }
}

/// JSON lines of a dump, sorted, with consumer seen/active times masked.
fn json_norm(p: &Path) -> Vec<String> {
    let (code, out, err) = rd(&["json", "--lines", s(p)]);
    assert_eq!(code, 0, "{err}");
    let re = regex::Regex::new(r#""seen_time":\d+,"active_time":\d+"#).unwrap();
    let mut v: Vec<String> = out
        .lines()
        .map(|l| re.replace_all(l, "TIMES").into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn resp_loads_into_real_redis() {
    let src = fixture("all-types.rdb");
    let Some(r) = Redis::start(&[], |_| {}) else {
        return;
    };
    let cmds = r.dir.path().join("cmds.resp");
    assert_eq!(rd(&["resp", s(&src), "-o", s(&cmds)]).0, 0);
    let out = r.pipe(&cmds);
    assert!(out.contains("errors: 0"), "{out}");
    let dump = r.save();
    assert_eq!(json_norm(&src), json_norm(&dump));
    // RESTORE payloads reproduce everything, consumer times included.
    r.cli(&["FLUSHALL"]);
    let rest = r.dir.path().join("restore.resp");
    assert_eq!(rd(&["resp", "--restore", s(&src), "-o", s(&rest)]).0, 0);
    let out = r.pipe(&rest);
    assert!(out.contains("errors: 0"), "{out}");
    let dump = r.save();
    let (code, out, _) = rd(&["diff", s(&src), s(&dump)]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn convert_outputs_load_into_real_redis() {
    let src = fixture("all-types.rdb");
    // A multi-part AOF directory, RDB base.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("aofdir");
    assert_eq!(
        rd(&["convert", s(&src), "--to", "aof-dir", "-o", s(&d)]).0,
        0
    );
    let Some(r) = Redis::start(
        &["--appendonly", "yes", "--appenddirname", "aofdir"],
        |dir| {
            copy_dir(&d, &dir.join("aofdir"));
        },
    ) else {
        return;
    };
    let dump = r.save();
    let (code, out, _) = rd(&["diff", s(&src), s(&dump)]);
    assert_eq!(code, 0, "{out}");
    drop(r);
    // The same with a RESP base: consumer times are not expressible.
    let d2 = tmp.path().join("aofdir2");
    assert_eq!(
        rd(&[
            "convert",
            s(&src),
            "--to",
            "aof-dir",
            "--aof-base",
            "resp",
            "-o",
            s(&d2)
        ])
        .0,
        0
    );
    let r = Redis::start(
        &["--appendonly", "yes", "--appenddirname", "aofdir"],
        |dir| {
            copy_dir(&d2, &dir.join("aofdir"));
        },
    )
    .unwrap();
    let dump = r.save();
    assert_eq!(json_norm(&src), json_norm(&dump));
    drop(r);
    // A v12 dump (stream v3, set listpack) brought down to v10 loads into
    // Redis 7.0.15.
    let v12 = tmp.path().join("v12.rdb");
    assert_eq!(
        rd(&[
            "convert",
            s(&src),
            "--to",
            "rdb",
            "--rdb-version",
            "12",
            "-o",
            s(&v12)
        ])
        .0,
        0
    );
    let v10 = tmp.path().join("v10.rdb");
    assert_eq!(rd(&["convert", s(&v12), "--to", "rdb", "-o", s(&v10)]).0, 0);
    let r = Redis::start(&["--dbfilename", "dump.rdb"], |dir| {
        std::fs::copy(&v10, dir.join("dump.rdb")).unwrap();
    })
    .unwrap();
    assert!(
        r.cli(&["DBSIZE"]).trim() == "36",
        "{}",
        r.cli(&["INFO", "keyspace"])
    );
    let dump = r.save();
    let (code, out, _) = rd(&["diff", s(&src), s(&dump)]);
    assert_eq!(code, 0, "{out}");
    // And an AOF written by Redis itself converts back to the same data.
    r.cli(&["CONFIG", "SET", "appendonly", "yes"]);
    for _ in 0..100 {
        if r.cli(&["INFO", "persistence"])
            .contains("aof_rewrite_in_progress:0")
            && r.dir.path().join("appendonlydir").exists()
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    r.cli(&["SET", "after", "rewrite"]);
    r.cli(&["PEXPIREAT", "after", "4102444800000"]);
    let back = tmp.path().join("from-redis-aof.rdb");
    let (code, _, err) = rd(&[
        "convert",
        s(&r.dir.path().join("appendonlydir")),
        "--to",
        "rdb",
        "-o",
        s(&back),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = rd(&["diff", s(&src), s(&back)]);
    assert_eq!(code, 1);
    assert!(
        out.contains("+ db 0 after") && out.contains("only in B: 1, changed: 0"),
        "{out}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

/// The memory report agrees with rdbtools' on v9 corpus dumps (rdbtools
/// reads no later version): same sizes, element counts and largest
/// elements, except skiplist zsets where rdbtools draws random levels and
/// we use the mean, and compact blobs we rebuild rather than measure.
#[test]
fn memory_matches_rdbtools() {
    let Some(c) = corpus() else { return };
    if std::process::Command::new("rdb")
        .arg("--help")
        .output()
        .is_err()
    {
        eprintln!("rdbtools (`rdb`) not on PATH: comparison skipped");
        return;
    }
    let parse = |csv: &str| -> std::collections::BTreeMap<(String, String), Vec<String>> {
        csv.lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f.len() == 8).then(|| {
                    (
                        (f[0].to_string(), f[2].to_string()),
                        f.iter().map(|x| x.to_string()).collect(),
                    )
                })
            })
            .collect()
    };
    let mut compared = 0;
    for f in [
        "hdt3213-rdb/memory.rdb",
        "dragonfly/redis6_small.rdb",
        "keydb/tests/redis-save.rdb",
    ] {
        let p = c.join(f);
        if !p.exists() {
            continue;
        }
        let o = std::process::Command::new("rdb")
            .args(["--command", "memory", s(&p)])
            .output()
            .unwrap();
        let theirs = parse(&String::from_utf8_lossy(&o.stdout));
        let (code, out, _) = rd(&["memory", s(&p)]);
        assert_eq!(code, 0);
        let ours = parse(&out);
        assert_eq!(theirs.len(), ours.len(), "{f}");
        for (k, t) in &theirs {
            let o = &ours[k];
            // type, size, encoding, num_elements, len_largest_element, expiry
            assert_eq!(
                (&t[1], &t[4], &t[5], &t[6]),
                (&o[1], &o[4], &o[5], &o[6]),
                "{f} {k:?}"
            );
            let (ts, os): (f64, f64) = (t[3].parse().unwrap(), o[3].parse().unwrap());
            if t[4] == "skiplist" {
                assert!((ts - os).abs() / ts < 0.15, "{f} {k:?}: {ts} vs {os}");
            } else if t[4] == "ziplist" && t[1] != "list" {
                // Rebuilt blob vs the stored one: within a few bytes.
                assert!((ts - os).abs() / ts < 0.05, "{f} {k:?}: {ts} vs {os}");
            } else {
                assert_eq!(ts, os, "{f} {k:?}");
            }
            compared += 1;
        }
    }
    assert!(compared > 20, "{compared}");
}

/// The real binary: exit statuses 0 (sane), 1 (damaged), 2 (usage).
#[test]
fn binary_exit_codes() {
    let bin = env!("CARGO_BIN_EXE_rdb-dump");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .output()
            .unwrap()
            .status
            .code()
    };
    let small = fixture("small.rdb");
    assert_eq!(run(&["check", s(&small)]), Some(0));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.rdb");
    let data = std::fs::read(&small).unwrap();
    std::fs::write(&p, &data[..data.len() - 20]).unwrap();
    assert_eq!(run(&["check", s(&p)]), Some(1));
    assert_eq!(run(&["check"]), Some(2));
    assert_eq!(run(&["--version"]), Some(0));
}
