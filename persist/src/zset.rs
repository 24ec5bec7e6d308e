//! Sorted sets: a member -> score map plus an ordered index on (score, member).

use bytes::Bytes;
use hashbrown::HashMap;
use std::cmp::Ordering;
use std::collections::BTreeSet;

/// An entry of the ordered index. Ordered by score, then member bytes, as
/// Redis's skiplist orders them. Scores are never NaN (callers reject NaN).
#[derive(Debug, Clone)]
pub struct ScoredMember {
    pub score: f64,
    pub member: Bytes,
}

impl PartialEq for ScoredMember {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for ScoredMember {}
impl PartialOrd for ScoredMember {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ScoredMember {
    fn cmp(&self, other: &Self) -> Ordering {
        // -0.0 and 0.0 compare equal in Redis; `partial_cmp` gives that, and
        // NaN never reaches here.
        self.score
            .partial_cmp(&other.score)
            .unwrap_or(Ordering::Equal)
            .then_with(|| self.member.cmp(&other.member))
    }
}

#[derive(Debug, Clone, Default)]
pub struct ZSet {
    dict: HashMap<Bytes, f64>,
    index: BTreeSet<ScoredMember>,
    /// Promoted to `skiplist` (never demoted while the key lives).
    pub skiplist: bool,
}

impl PartialEq for ZSet {
    fn eq(&self, other: &Self) -> bool {
        self.dict == other.dict
    }
}

impl ZSet {
    pub fn new() -> ZSet {
        ZSet::default()
    }

    pub fn len(&self) -> usize {
        self.dict.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dict.is_empty()
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.dict.get(member).copied()
    }

    /// Inserts or updates; returns the previous score.
    pub fn insert(&mut self, member: Bytes, score: f64) -> Option<f64> {
        let old = self.dict.insert(member.clone(), score);
        if let Some(old_score) = old {
            if old_score == score && old_score.to_bits() == score.to_bits() {
                return old;
            }
            self.index.remove(&ScoredMember {
                score: old_score,
                member: member.clone(),
            });
        }
        self.index.insert(ScoredMember { score, member });
        old
    }

    /// Removes a member; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (key, score) = self.dict.remove_entry(member)?;
        self.index.remove(&ScoredMember { score, member: key });
        Some(score)
    }

    /// Members in ascending (score, member) order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &ScoredMember> + '_ {
        self.index.iter()
    }

    /// 0-based ascending rank of a member.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        let probe = ScoredMember {
            score,
            member: Bytes::copy_from_slice(member),
        };
        Some(self.index.range(..probe).count())
    }

    /// The ordered index, for range queries by score or lex.
    pub fn index(&self) -> &BTreeSet<ScoredMember> {
        &self.index
    }
}
