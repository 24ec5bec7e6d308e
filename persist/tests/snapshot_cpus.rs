//! A snapshot's encoder and writer run on the CPUs its spec names
//! (`bgsave_cpulist`, `aof_rewrite_cpulist`). Its own test binary: the
//! test finds the threads by name, and no other test's snapshot may run
//! alongside.

use redoubt_persist::cpus::CpuList;
use redoubt_persist::rdb::SaveOptions;
use redoubt_persist::snapshot::{Snapshot, SnapshotFormat, SnapshotSpec};
use redoubt_persist::storage::{SimStorage, Storage};
use redoubt_persist::{Keyspace, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `Cpus_allowed_list` of each of this process's threads named `prefix*`.
fn allowed_of(prefix: &str) -> Vec<String> {
    let mut lists = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        if let Some(l) = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")) {
            lists.push(l["Cpus_allowed_list:".len()..].trim().to_string());
        }
    }
    lists
}

#[test]
fn the_snapshot_threads_run_on_the_cpus_named() {
    let mine = allowed_of("snapshot_cpus");
    let ours: CpuList = mine[0].parse().expect("the kernel writes a CPU list");
    let cpus = ours.cpus();
    assert!(
        cpus.len() >= 2,
        "needs two CPUs to tell a pinned thread from an inheriting one"
    );
    // The last CPU this test may use, unlike the first, which the
    // threads would inherit too.
    let target: CpuList = cpus[cpus.len() - 1].to_string().parse().unwrap();

    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let mut ks = Keyspace::new(16);
    for i in 0..1000 {
        ks.dbs[0].insert(format!("k{i}").as_bytes(), Value::str_from(b"v"), 0);
    }
    let spec = SnapshotSpec {
        storage,
        target: PathBuf::from("dump.rdb"),
        format: SnapshotFormat::Rdb(SaveOptions::default()),
        lsn: 1,
        epoch: 1,
        incremental_fsync: false,
        event_loop: None,
        cpus: Some(target.clone()),
    };
    // Not stepped yet, so both threads wait for work and stay alive.
    let mut snap = Snapshot::start(&mut ks, spec).unwrap();
    let want = vec![target.to_string(); 2];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = allowed_of("snapshot-");
    while seen != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        seen = allowed_of("snapshot-");
    }
    assert_eq!(seen, want, "encoder and writer on {target}");
    assert_eq!(
        allowed_of("snapshot_cpus"),
        mine,
        "the caller keeps its CPUs"
    );
    snap.run_to_end(&mut ks).unwrap();
}
