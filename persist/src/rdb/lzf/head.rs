//! Whether the head of an input repeats a three-byte sequence.
//!
//! The quick compressor ([`super::compress_into_quick`]) gives up on an
//! input when no back reference starts in its first [`PROBE`] positions,
//! and a back reference can only start where a three-byte sequence occurs
//! the second time. Random and already compressed values, most of what a
//! snapshot ends up storing raw, have no such repeat, and finding that out
//! by running the compressor's own loop over the probe took about 260 ns
//! for a 256-byte value: over half of a loaded snapshot encoder's CPU
//! (`perf record -C 0` during a BGSAVE under a `-P 16` SET load). Here the
//! 64 sequences go through AVX-512's conflict detection where the CPU has
//! it, and otherwise through a small bit filter whose rare hits are
//! checked exactly. Either way the answer is exact: the compressor's
//! verdict never changes, only its cost.

/// Positions probed; the AVX-512 path holds their sequences in four
/// 16-lane registers.
pub(super) const PROBE: usize = 64;

/// Bytes the probe reads: the sequence at the last position runs two past
/// it.
pub(super) const HEAD: usize = PROBE + 2;

/// Whether two of the three-byte sequences starting at positions
/// `0..PROBE` of `head` are equal.
pub(super) fn repeats(head: &[u8; HEAD]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        // SAFETY: `available()` has checked that this CPU has every feature
        // `avx512::repeats` is compiled with.
        return unsafe { avx512::repeats(head) };
    }
    repeats_filtered(head)
}

/// The sequence at position `i`, as the low 24 bits of a word.
#[inline]
fn seq(head: &[u8; HEAD], i: usize) -> u32 {
    (u32::from(head[i]) << 16) | (u32::from(head[i + 1]) << 8) | u32::from(head[i + 2])
}

/// [`repeats`] without vector instructions: each sequence sets one bit of
/// a 4096-bit filter (512 bytes on the stack, which stays in L1; an 8 KiB
/// table indexed by the sequence's first two bytes missed it in a real
/// save). A sequence whose bit is already set is compared with the ones
/// before it, so a filter collision costs a short scan, never a wrong
/// answer.
pub(super) fn repeats_filtered(head: &[u8; HEAD]) -> bool {
    let mut filter = [0u64; 64];
    let mut seen = [0u32; PROBE];
    for i in 0..PROBE {
        let s = seq(head, i);
        let bit = s.wrapping_mul(0x9E37_79B1) >> 20;
        let (word, mask) = ((bit >> 6) as usize, 1u64 << (bit & 63));
        if filter[word] & mask != 0 && seen[..i].contains(&s) {
            return true;
        }
        filter[word] |= mask;
        seen[i] = s;
    }
    false
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx512 {
    use super::{HEAD, PROBE};
    use std::arch::x86_64::*;
    use std::sync::atomic::{AtomicU8, Ordering};

    const _: () = assert!(PROBE == 64, "four registers of sixteen sequences");

    /// 0 = not checked yet, 1 = missing, 2 = present.
    static DETECTED: AtomicU8 = AtomicU8::new(0);

    /// Whether this CPU has what [`repeats`] needs; detected once.
    pub(in super::super) fn available() -> bool {
        match DETECTED.load(Ordering::Relaxed) {
            2 => true,
            1 => false,
            _ => {
                let ok = std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512cd");
                DETECTED.store(if ok { 2 } else { 1 }, Ordering::Relaxed);
                ok
            }
        }
    }

    /// The sequences at positions `16 * j .. 16 * j + 16`, one per lane.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn sequences(head: &[u8; HEAD], j: usize) -> __m512i {
        assert!(16 * j + 2 + 16 <= HEAD);
        let p = head.as_ptr();
        // SAFETY: the assert keeps the three 16-byte unaligned loads, at
        // offsets 16j, 16j+1 and 16j+2, inside `head`.
        let (a, b, c) = unsafe {
            (
                _mm_loadu_si128(p.add(16 * j).cast()),
                _mm_loadu_si128(p.add(16 * j + 1).cast()),
                _mm_loadu_si128(p.add(16 * j + 2).cast()),
            )
        };
        let (a, b, c) = (
            _mm512_cvtepu8_epi32(a),
            _mm512_cvtepu8_epi32(b),
            _mm512_cvtepu8_epi32(c),
        );
        _mm512_or_si512(
            _mm512_slli_epi32::<16>(a),
            _mm512_or_si512(_mm512_slli_epi32::<8>(b), c),
        )
    }

    /// [`super::repeats`] with `vpconflictd`, which sets in each of 16
    /// lanes a bit per earlier lane holding the same value. The 64
    /// sequences are four registers; every pair of sequences meets in one
    /// of 28 conflict checks: each register whole (pairs within it), and
    /// for each two registers the four registers made of a half of one
    /// and a half of the other. Branch-free, about 23 ns a head on the
    /// machine of `BENCHMARKS.md` (AMD EPYC, Zen 4), against 78 ns for the
    /// 128 compares of every rotation it replaced. Intel's cores run the
    /// instruction as microcode, slower than Zen 4 does; not measured there.
    #[target_feature(enable = "avx512f,avx512cd")]
    pub(in super::super) fn repeats(head: &[u8; HEAD]) -> bool {
        let v = [
            sequences(head, 0),
            sequences(head, 1),
            sequences(head, 2),
            sequences(head, 3),
        ];
        let mut seen = _mm512_setzero_si512();
        for x in v {
            seen = _mm512_or_si512(seen, _mm512_conflict_epi32(x));
        }
        for (i, j) in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)] {
            let (x, y) = (v[i], v[j]);
            // 128-bit blocks: 0x44 = x's low half and y's low half, 0xE4
            // low and high, 0x4E high and low, 0xEE high and high.
            for halves in [
                _mm512_shuffle_i64x2::<0x44>(x, y),
                _mm512_shuffle_i64x2::<0xE4>(x, y),
                _mm512_shuffle_i64x2::<0x4E>(x, y),
                _mm512_shuffle_i64x2::<0xEE>(x, y),
            ] {
                seen = _mm512_or_si512(seen, _mm512_conflict_epi32(halves));
            }
        }
        _mm512_test_epi32_mask(seen, seen) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn naive(head: &[u8; HEAD]) -> bool {
        (0..PROBE).any(|i| (0..i).any(|j| head[j..j + 3] == head[i..i + 3]))
    }

    /// Every implementation this CPU can run.
    fn each(head: &[u8; HEAD]) -> Vec<bool> {
        #[allow(unused_mut)]
        let mut answers = vec![repeats(head), repeats_filtered(head)];
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            // SAFETY: checked just above.
            answers.push(unsafe { avx512::repeats(head) });
        }
        answers
    }

    fn check(head: &[u8; HEAD], what: &str) {
        let want = naive(head);
        for (k, got) in each(head).into_iter().enumerate() {
            assert_eq!(got, want, "implementation {k}, {what}: {head:?}");
        }
    }

    /// Heads without a repeat, and the same heads with one planted at every
    /// pair of positions (including overlapping ones, and sequences that
    /// share two of their three bytes, which must not count).
    #[test]
    fn agree_with_the_naive_scan() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        // 66 distinct bytes: no sequence repeats.
        let mut base = [0u8; HEAD];
        for (i, b) in base.iter_mut().enumerate() {
            *b = 100 + i as u8;
        }
        check(&base, "distinct bytes");
        for i in 0..PROBE {
            for j in 0..i {
                let mut h = base;
                let s = [h[j], h[j + 1], h[j + 2]];
                h[i..i + 3].copy_from_slice(&s);
                check(&h, &format!("planted at {j} and {i}"));
                let mut near = base;
                near[i..i + 2].copy_from_slice(&s[..2]);
                check(&near, &format!("two bytes of {j} at {i}"));
            }
        }
        for trial in 0..20_000 {
            let mut h = [0u8; HEAD];
            // Small alphabets make repeats likely, large ones rare.
            let alphabet = [2u16, 4, 16, 64, 256][trial % 5];
            for b in h.iter_mut() {
                *b = rng.gen_range(0..alphabet) as u8;
            }
            check(&h, &format!("random, alphabet {alphabet}"));
        }
    }
}
