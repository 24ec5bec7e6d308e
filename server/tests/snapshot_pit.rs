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
