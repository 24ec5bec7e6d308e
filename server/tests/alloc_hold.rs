//! The allocator's freed pages held while a snapshot runs
//! (`redoubt_server::alloc`). Its own test binary: the setting is the
//! process's, and tests running snapshots alongside would hold it too.

use redoubt_server::alloc::FreedPages;
use tikv_jemalloc_ctl::raw;

fn read(name: &str) -> isize {
    let name = format!("{name}\0");
    // SAFETY: a NUL-terminated jemalloc control of type ssize_t.
    unsafe { raw::read::<isize>(name.as_bytes()) }.unwrap()
}

#[test]
fn holds_keep_freed_pages_until_the_last_one_ends() {
    let before = read("arena.0.dirty_decay_ms");
    let default_before = read("arenas.dirty_decay_ms");
    assert_ne!(before, -1);
    let (mut a, mut b) = (FreedPages::default(), FreedPages::default());
    a.hold(true);
    assert!(a.is_held());
    assert_eq!(read("arena.0.dirty_decay_ms"), -1);
    assert_eq!(read("arenas.dirty_decay_ms"), -1);
    // A second executor's hold, and a repeated one, change nothing; the
    // first to end leaves the pages held for the other.
    b.hold(true);
    a.hold(true);
    a.hold(false);
    assert!(!a.is_held());
    assert_eq!(read("arena.0.dirty_decay_ms"), -1);
    drop(b);
    assert_eq!(read("arena.0.dirty_decay_ms"), before);
    assert_eq!(read("arenas.dirty_decay_ms"), default_before);
}
