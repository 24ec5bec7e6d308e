//! Point-in-time snapshots: while random writes run between the walker's
//! steps, BGSAVE must write exactly the state after the commands whose LSN
//! is at most the snapshot's LSN. The logged commands are replayed into a
//! fresh executor to build that expected state.

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use redoubt_persist::storage::{SimStorage, Storage};
use redoubt_persist::Keyspace;
use redoubt_server::client::Client;
use redoubt_server::config::Config;
use redoubt_server::durability::{Gate, GateLog};
use redoubt_server::exec::Executor;
use redoubt_server::resp::Reply;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

fn executor(storage: &SimStorage) -> (Executor, GateLog) {
    let mut cfg = Config::default();
    cfg.save.clear();
    let mut ex = Executor::new(cfg);
    let (gate, _tx) = Gate::new();
    let log = gate.log.clone();
    ex.durability = Box::new(gate);
    ex.save.storage = Arc::new(storage.clone());
    (ex, log)
}

fn client(ex: &mut Executor) -> Rc<RefCell<Client>> {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    ex.register_client(|id| Client::new(id, "test".into(), "test".into(), true, tx))
}

fn run(ex: &mut Executor, c: &Rc<RefCell<Client>>, args: &[&str]) -> Reply {
    let args: Vec<Bytes> = args
        .iter()
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect();
    ex.execute(&mut c.borrow_mut(), &args).0
}

fn random_command(rng: &mut impl Rng) -> Vec<String> {
    let key = format!("k{}", rng.gen_range(0..6000));
    let s = |x: &str| x.to_string();
    match rng.gen_range(0..10) {
        0..=3 => vec![s("SET"), key, format!("v{}", rng.gen::<u32>())],
        4 => vec![s("INCR"), format!("counter{}", rng.gen_range(0..50))],
        5 => vec![s("DEL"), key],
        6 => vec![s("APPEND"), key, s("+")],
        7 => vec![s("PEXPIRE"), key, s("100000000")],
        8 => vec![s("SELECT"), rng.gen_range(0..3).to_string()],
        _ => match rng.gen_range(0..40) {
            0 => vec![s("FLUSHDB")],
            1 => vec![s("SWAPDB"), s("0"), s("1")],
            _ => vec![
                s("MSET"),
                key,
                s("m"),
                format!("k{}", rng.gen_range(0..6000)),
                s("n"),
            ],
        },
    }
}

/// Every (db, key, value, expiry) of a keyspace, sorted.
fn contents(ks: &Keyspace) -> Vec<(usize, Vec<u8>, String, u64)> {
    let mut v: Vec<_> = ks
        .dbs
        .iter()
        .enumerate()
        .flat_map(|(i, db)| {
            db.iter()
                .map(move |e| (i, e.key.to_vec(), format!("{:?}", e.value), e.expire_at))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn bgsave_is_point_in_time_under_concurrent_writes() {
    for seed in 0..4u64 {
        let disk = SimStorage::new();
        let (mut ex, log) = executor(&disk);
        let c = client(&mut ex);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for i in 0..5000 {
            run(&mut ex, &c, &["SELECT", &(i % 3).to_string()]);
            run(
                &mut ex,
                &c,
                &["SET", &format!("k{i}"), &format!("initial{i}")],
            );
        }
        for _ in 0..2000 {
            let cmd = random_command(&mut rng);
            let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
            run(&mut ex, &c, &refs);
        }
        assert_eq!(
            run(&mut ex, &c, &["BGSAVE"]),
            Reply::Status("Background saving started")
        );
        let snapshot_lsn = ex.lsn;
        let mut steps = 0;
        while ex.bgsave_tick(Duration::from_micros(20)) {
            for _ in 0..30 {
                let cmd = random_command(&mut rng);
                let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
                run(&mut ex, &c, &refs);
            }
            steps += 1;
            assert!(steps < 1_000_000, "snapshot never finished");
        }
        assert!(ex.save.last_bgsave_ok, "seed {seed}: save failed");
        assert!(
            ex.lsn > snapshot_lsn + 100,
            "seed {seed}: too few writes during the save"
        );

        // Expected: replay the log up to the snapshot LSN.
        let (mut model, _) = executor(&SimStorage::new());
        let mc = client(&mut model);
        for (lsn, db, args) in log.borrow().iter() {
            if *lsn > snapshot_lsn {
                break;
            }
            mc.borrow_mut().db = *db;
            let (r, _) = model.execute(&mut mc.borrow_mut(), args);
            assert!(!r.is_error(), "replay of {args:?} failed: {r:?}");
        }

        let (mut loaded, _) = executor(&disk);
        loaded.load_rdb().expect("load").expect("a dump exists");
        assert_eq!(
            loaded.save.last_lsn, snapshot_lsn,
            "the dump records its LSN"
        );
        let (want, got) = (contents(&model.ks), contents(&loaded.ks));
        assert_eq!(want.len(), got.len(), "seed {seed}: key count");
        assert!(
            want == got,
            "seed {seed}: the dump differs from the state at LSN {snapshot_lsn}"
        );
        assert!(disk.exists(std::path::Path::new("dump.rdb")));
    }
}

/// A failed background save (the disk is full) leaves the old dump, reports
/// `err`, refuses writes with MISCONF while save points are configured, and
/// recovers on the next successful save.
#[test]
fn failed_bgsave_reports_err_and_refuses_writes_until_a_save_succeeds() {
    use redoubt_persist::storage::Fault;
    let disk = SimStorage::new();
    let cfg = Config {
        save: vec![(3600, 1)],
        ..Config::default()
    };
    let mut ex = Executor::new(cfg);
    ex.save.storage = Arc::new(disk.clone());
    let c = client(&mut ex);
    run(&mut ex, &c, &["SET", "a", "1"]);
    assert_eq!(run(&mut ex, &c, &["SAVE"]), Reply::ok());
    let good = disk.read_all(std::path::Path::new("dump.rdb")).unwrap();
    run(&mut ex, &c, &["SET", "b", "2"]);
    // Fail the first data write of the next save.
    disk.inject(1, Fault::NoSpace);
    assert_eq!(
        run(&mut ex, &c, &["BGSAVE"]),
        Reply::Status("Background saving started")
    );
    while ex.bgsave_tick(Duration::from_millis(5)) {}
    assert!(!ex.save.last_bgsave_ok);
    assert_eq!(
        disk.read_all(std::path::Path::new("dump.rdb")).unwrap(),
        good
    );
    assert_eq!(
        disk.list(std::path::Path::new(".")).unwrap(),
        vec!["dump.rdb".to_string()]
    );
    match run(&mut ex, &c, &["SET", "c", "3"]) {
        Reply::Error(e) => assert!(e.starts_with("MISCONF"), "{e}"),
        other => panic!("write accepted after a failed save: {other:?}"),
    }
    // Reads still work.
    assert_eq!(
        run(&mut ex, &c, &["GET", "a"]),
        Reply::Bulk(Bytes::from_static(b"1"))
    );
    let info = match run(&mut ex, &c, &["INFO", "persistence"]) {
        Reply::Verbatim(s) => s,
        other => panic!("{other:?}"),
    };
    assert!(info.contains("rdb_last_bgsave_status:err"), "{info}");
    // The next save works and lifts the refusal.
    assert_eq!(
        run(&mut ex, &c, &["BGSAVE"]),
        Reply::Status("Background saving started")
    );
    while ex.bgsave_tick(Duration::from_millis(5)) {}
    assert!(ex.save.last_bgsave_ok);
    assert_eq!(run(&mut ex, &c, &["SET", "c", "3"]), Reply::ok());
}
