//! PLANTED BUGS — test-only fault switches for the crash-injection suite.
//!
//! With the `planted-bugs` cargo feature (enabled only by the `redoubt-tests`
//! crate's dev-dependency), the suite flips these flags at run time to put
//! known durability bugs back into the engine and checks that it reports
//! them. Without the feature every check is a constant `false` and the hooks
//! compile away. Each hook in the engine is marked `PLANTED BUG`.

/// A bug the suite can plant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// Skip the directory fsync after a rename (snapshot writer, AOF
    /// manifest swap).
    SkipDirFsync = 1,
    /// Under `appendfsync always`, publish the watermark before the fsync.
    EarlyWatermark = 2,
    /// Rename the snapshot temp file before fsyncing it.
    RenameBeforeFsync = 4,
}

#[cfg(feature = "planted-bugs")]
mod imp {
    use super::Bug;
    use std::sync::atomic::{AtomicU32, Ordering};

    static FLAGS: AtomicU32 = AtomicU32::new(0);

    pub fn set(bug: Option<Bug>) {
        FLAGS.store(bug.map_or(0, |b| b as u32), Ordering::SeqCst);
    }

    #[inline]
    pub fn on(bug: Bug) -> bool {
        FLAGS.load(Ordering::SeqCst) & bug as u32 != 0
    }
}

#[cfg(feature = "planted-bugs")]
pub use imp::{on, set};

/// Always false without the `planted-bugs` feature.
#[cfg(not(feature = "planted-bugs"))]
#[inline(always)]
pub fn on(_bug: Bug) -> bool {
    false
}
