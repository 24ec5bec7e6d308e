//! CRC-64 as Redis computes it: the Jones polynomial, reflected, init 0,
//! no final xor (check value for "123456789" is 0xE9C6D914C4B8D9CA).
//!
//! The CRC covers every byte of an RDB file, DUMP payload and AOF preamble,
//! so it is paid on every save and every load. A fork-free save runs on the
//! core it shares with the executor, so each cycle the checksum spends there
//! is write throughput lost while the save runs. Two implementations:
//!
//! * slice-by-8 tables: portable, and the fastest for short inputs (rather
//!   than the `crc64` crate, which goes a byte at a time);
//! * on x86_64 with PCLMULQDQ, carry-less-multiply folding ([`clmul`]),
//!   picked at run time for inputs of 16 bytes or more.

/// Reflected form of the Jones polynomial 0xAD93D23594C935A9.
const POLY: u64 = 0x95AC_9329_AC4B_C9B5;

const fn make_tables() -> [[u64; 256]; 8] {
    let mut t = [[0u64; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut k = 0;
        while k < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            k += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut n = 1;
    while n < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[n - 1][i];
            t[n][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        n += 1;
    }
    t
}

static TABLES: [[u64; 256]; 8] = make_tables();

/// Continues a CRC over `data` (start from 0). Incremental:
/// `crc64(crc64(0, a), b) == crc64(0, a ++ b)`.
pub fn crc64(crc: u64, data: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if data.len() >= clmul::MIN_LEN && clmul::available() {
        // SAFETY: `available()` has checked that this CPU has every feature
        // `clmul::crc64` is compiled with.
        return unsafe { clmul::crc64(crc, data) };
    }
    crc64_table(crc, data)
}

/// The slice-by-8 table CRC: the fallback, and the tail of the fast path.
fn crc64_table(mut crc: u64, data: &[u8]) -> u64 {
    let t = &TABLES;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let v = crc ^ u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        crc = t[7][(v & 0xff) as usize]
            ^ t[6][((v >> 8) & 0xff) as usize]
            ^ t[5][((v >> 16) & 0xff) as usize]
            ^ t[4][((v >> 24) & 0xff) as usize]
            ^ t[3][((v >> 32) & 0xff) as usize]
            ^ t[2][((v >> 40) & 0xff) as usize]
            ^ t[1][((v >> 48) & 0xff) as usize]
            ^ t[0][(v >> 56) as usize];
    }
    for &b in chunks.remainder() {
        crc = t[0][((crc ^ u64::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// Polynomial arithmetic mod P for the folding constants, in the normal
/// (unreflected) domain: bit i is the coefficient of x^i, and P's x^64 term
/// is implicit. Only the fast path and the tests use it.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
mod gf2 {
    /// The Jones polynomial without its x^64 term.
    pub(super) const P: u64 = super::POLY.reverse_bits();

    /// x^k mod P.
    pub(super) const fn xpow_mod(k: u32) -> u64 {
        let mut r: u64 = 1;
        let mut i = 0;
        while i < k {
            let carry = r >> 63;
            r <<= 1;
            if carry == 1 {
                r ^= P;
            }
            i += 1;
        }
        r
    }

    /// floor(x^128 / P) without its x^64 term: the Barrett constant.
    pub(super) const fn barrett_mu() -> u64 {
        // The quotient's x^64 term is 1; what is left of x^128 after
        // subtracting x^64 * P is x^64 * (P - x^64).
        let mut rem: u128 = (P as u128) << 64;
        let mut q: u64 = 0;
        let mut i = 64;
        while i > 0 {
            i -= 1;
            if (rem >> (64 + i)) & 1 == 1 {
                q |= 1 << i;
                rem ^= (1u128 << (64 + i)) ^ ((P as u128) << i);
            }
        }
        q
    }
}

/// CRC-64 by carry-less multiplication (the scheme of Intel's "Fast CRC
/// Computation for Generic Polynomials Using PCLMULQDQ"), about ten times the
/// table's speed on long inputs.
///
/// Reflected domain: a 128-bit register loaded from 16 message bytes holds
/// the coefficients of x^127 (bit 0) down to x^0 (bit 127). Folding a
/// register forward by D bits multiplies its low half H by x^(D+64) mod P
/// and its high half L by x^D mod P, and XORs both products into the
/// register D bits later: the sum is congruent mod P to the register shifted
/// there. Eight registers fold 128 bytes per step, independently, to keep the
/// multiplier busy; they then fold into one, which reduces to the 64-bit CRC
/// by a fold of its low half and a Barrett reduction. A carry-less product
/// of two reflected 64-bit values comes out one bit short of the reflected
/// 128-bit product, so every constant is one power of x lower.
#[cfg(target_arch = "x86_64")]
mod clmul {
    use super::gf2::{barrett_mu, xpow_mod};
    use std::arch::x86_64::{
        __m128i, _mm_clmulepi64_si128, _mm_cvtsi128_si64, _mm_cvtsi64_si128, _mm_extract_epi64,
        _mm_loadu_si128, _mm_set_epi64x, _mm_setzero_si128, _mm_xor_si128,
    };
    use std::sync::atomic::{AtomicU8, Ordering};

    /// The fast path needs one 16-byte register's worth; from there on it
    /// beats the table despite its fixed cost (the final reduction), by
    /// about 1.2x at 16 bytes, 3x at 64 and 8x at 256 (`speed` in the tests
    /// below measures it).
    pub(super) const MIN_LEN: usize = 16;

    const LANES: usize = 8;
    const STEP: usize = LANES * 16;

    /// Folding constants for a distance of `d` registers (128 * d bits):
    /// (x^(128d + 64 - 1), x^(128d - 1)) mod P, reflected.
    const fn fold_by(d: u32) -> (u64, u64) {
        (
            xpow_mod(128 * d + 63).reverse_bits(),
            xpow_mod(128 * d - 1).reverse_bits(),
        )
    }

    /// FOLD[d] folds a register forward by `d` registers, d in 1..=8.
    pub(super) const FOLD: [(u64, u64); LANES + 1] = {
        let mut t = [(0, 0); LANES + 1];
        let mut d = 1;
        while d <= LANES {
            t[d] = fold_by(d as u32);
            d += 1;
        }
        t
    };
    /// Folds a register's low half onto its high half: x^(128 - 1) mod P.
    pub(super) const K_HALF: u64 = xpow_mod(127).reverse_bits();
    /// Barrett's floor(x^128 / P) (less x^64), reflected.
    pub(super) const MU: u64 = barrett_mu().reverse_bits();

    /// 0 = not checked yet, 1 = missing, 2 = present.
    static DETECTED: AtomicU8 = AtomicU8::new(0);

    /// Whether this CPU has what [`crc64`] needs; detected once.
    pub(super) fn available() -> bool {
        match DETECTED.load(Ordering::Relaxed) {
            2 => true,
            1 => false,
            _ => {
                let ok = std::arch::is_x86_feature_detected!("pclmulqdq")
                    && std::arch::is_x86_feature_detected!("sse4.1");
                DETECTED.store(if ok { 2 } else { 1 }, Ordering::Relaxed);
                ok
            }
        }
    }

    #[inline]
    #[target_feature(enable = "pclmulqdq,sse4.1")]
    fn constant(k: (u64, u64)) -> __m128i {
        _mm_set_epi64x(k.1 as i64, k.0 as i64)
    }

    /// `x` folded forward by the distance `k` was made for.
    #[inline]
    #[target_feature(enable = "pclmulqdq,sse4.1")]
    fn fold(x: __m128i, k: __m128i) -> __m128i {
        _mm_xor_si128(
            _mm_clmulepi64_si128(x, k, 0x00),
            _mm_clmulepi64_si128(x, k, 0x11),
        )
    }

    #[inline]
    #[target_feature(enable = "pclmulqdq,sse4.1")]
    fn load(block: &[u8]) -> __m128i {
        assert!(block.len() >= 16);
        // SAFETY: the assert above keeps the 16-byte unaligned load in
        // bounds.
        unsafe { _mm_loadu_si128(block.as_ptr().cast()) }
    }

    /// The 128-bit carry-less product of `a` and `b`, as (low, high) halves.
    #[inline]
    #[target_feature(enable = "pclmulqdq,sse4.1")]
    fn mul(a: u64, b: u64) -> (u64, u64) {
        let p = _mm_clmulepi64_si128(_mm_cvtsi64_si128(a as i64), _mm_cvtsi64_si128(b as i64), 0);
        (_mm_cvtsi128_si64(p) as u64, _mm_extract_epi64(p, 1) as u64)
    }

    /// A*x^64 mod P for reflected `a`, by Barrett: the quotient is
    /// q = A + floor(A*mu / x^64), and the remainder is the low half of q*P.
    /// The shifts make up for the bit a reflected product comes out short.
    #[target_feature(enable = "pclmulqdq,sse4.1")]
    pub(super) fn barrett(a: u64) -> u64 {
        let q = a ^ (mul(a, MU).0 << 1);
        let (lo, hi) = mul(q, super::POLY);
        (lo >> 63) | (hi << 1)
    }

    /// The CRC register after a message whose folded remainder is `x`:
    /// X*x^64 mod P.
    #[target_feature(enable = "pclmulqdq,sse4.1")]
    fn reduce(x: __m128i) -> u64 {
        let h = _mm_cvtsi128_si64(x) as u64;
        let l = _mm_extract_epi64(x, 1) as u64;
        // X*x^64 = H*x^128 + L*x^64; fold H down to 128 bits, then reduce.
        // The product's low word holds x^127..x^64, its high word x^63..x^0.
        let (upper, lower) = mul(h, K_HALF);
        barrett(upper ^ l) ^ lower
    }

    /// Continues `crc` over `data`, which must hold at least 16 bytes.
    #[target_feature(enable = "pclmulqdq,sse4.1")]
    pub(super) fn crc64(crc: u64, data: &[u8]) -> u64 {
        assert!(data.len() >= 16);
        // With no final xor, starting from `crc` is the same as XORing it
        // into the first eight bytes and starting from 0.
        let seed = _mm_cvtsi64_si128(crc as i64);
        let mut rest = data;
        let mut acc;
        if rest.len() >= STEP {
            let mut lanes = [_mm_setzero_si128(); LANES];
            for (i, lane) in lanes.iter_mut().enumerate() {
                *lane = load(&rest[16 * i..]);
            }
            lanes[0] = _mm_xor_si128(lanes[0], seed);
            rest = &rest[STEP..];
            let k = constant(FOLD[LANES]);
            while rest.len() >= STEP {
                for (i, lane) in lanes.iter_mut().enumerate() {
                    *lane = _mm_xor_si128(fold(*lane, k), load(&rest[16 * i..]));
                }
                rest = &rest[STEP..];
            }
            // Each lane folds straight onto the last one, all in parallel.
            acc = lanes[LANES - 1];
            for (i, &lane) in lanes[..LANES - 1].iter().enumerate() {
                acc = _mm_xor_si128(acc, fold(lane, constant(FOLD[LANES - 1 - i])));
            }
        } else {
            acc = _mm_xor_si128(load(rest), seed);
            rest = &rest[16..];
        }
        let k = constant(FOLD[1]);
        while rest.len() >= 16 {
            acc = _mm_xor_si128(fold(acc, k), load(rest));
            rest = &rest[16..];
        }
        super::crc64_table(reduce(acc), rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_values() {
        assert_eq!(crc64(0, b"123456789"), 0xE9C6_D914_C4B8_D9CA);
        assert_eq!(crc64(0, b""), 0);
        // Redis's own self-test string.
        let long = b"This is a test of the emergency broadcast system.";
        let whole = crc64(0, long);
        let split = crc64(crc64(0, &long[..13]), &long[13..]);
        assert_eq!(whole, split);
    }

    #[test]
    fn dump_payload_example_from_spec() {
        // SET num 12345 on 7.0.15: 00 C1 39 30 0A 00 + CRC 9D94EA2793FC08B9 (LE).
        let body = [0x00, 0xC1, 0x39, 0x30, 0x0A, 0x00];
        let crc = crc64(0, &body);
        assert_eq!(
            crc.to_le_bytes(),
            [0x9D, 0x94, 0xEA, 0x27, 0x93, 0xFC, 0x08, 0xB9]
        );
    }
}

#[cfg(test)]
mod cross_check {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        #[test]
        fn matches_crc64_crate(data in proptest::collection::vec(any::<u8>(), 0..300), seed in any::<u64>()) {
            prop_assert_eq!(super::crc64(seed, &data), crc64::crc64(seed, &data));
        }
    }
}

#[cfg(test)]
mod constants {
    use super::gf2::{barrett_mu, xpow_mod, P};
    use super::*;

    #[test]
    fn poly_is_jones() {
        assert_eq!(P, 0xAD93_D235_94C9_35A9);
    }

    /// x^k mod P against the table CRC: the CRC of one byte 0x01 followed
    /// by n-1 zero bytes is x^(8n - 1) * x^64 mod P.
    #[test]
    fn xpow_mod_matches_table() {
        for n in 1..=200usize {
            let mut msg = vec![0u8; n];
            msg[0] = 1;
            let k = u32::try_from(8 * n + 63).unwrap();
            assert_eq!(xpow_mod(k).reverse_bits(), crc64_table(0, &msg), "n={n}");
        }
    }

    /// mu * P = x^128 + (terms below x^64): its x^127..x^64 terms cancel.
    #[test]
    fn barrett_mu_is_the_quotient() {
        let mu = barrett_mu();
        let mut prod: u128 = 0;
        for i in 0..64 {
            if (mu >> i) & 1 == 1 {
                prod ^= u128::from(P) << i;
            }
        }
        // (x^64 + mu)(x^64 + P) = x^128 + x^64 (mu + P) + mu * P.
        let middle = (prod >> 64) as u64 ^ mu ^ P;
        assert_eq!(middle, 0);
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod fast_path {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, RngCore, SeedableRng};

    /// The fast path, called directly so the tests cover it whatever
    /// `MIN_LEN` is; shorter inputs than it accepts go to the table.
    fn fast(crc: u64, data: &[u8]) -> u64 {
        assert!(clmul::available());
        if data.len() < 16 {
            return crc64_table(crc, data);
        }
        // SAFETY: `available()` was asserted above.
        unsafe { clmul::crc64(crc, data) }
    }

    /// Any x86_64 CPU of the last fifteen years has the fast path; without
    /// it the tests below would test nothing.
    #[test]
    fn detected_here() {
        assert!(clmul::available());
        assert!(clmul::available(), "cached answer");
    }

    #[test]
    fn check_value_long() {
        let msg: Vec<u8> = b"123456789".repeat(100);
        assert_eq!(fast(0, &msg), crc64_table(0, &msg));
        assert_eq!(crc64(0, &msg), crc64::crc64(0, &msg));
    }

    #[test]
    fn barrett_matches_table() {
        assert!(clmul::available());
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for _ in 0..1000 {
            let a: u64 = rng.gen();
            // A*x^64 mod P is the CRC of A's eight bytes.
            // SAFETY: `available()` was asserted above.
            let got = unsafe { clmul::barrett(a) };
            assert_eq!(got, crc64_table(0, &a.to_le_bytes()), "a={a:#x}");
        }
    }

    /// Every length across every boundary of the fast path (the 16-byte
    /// blocks, the 128-byte steps, `MIN_LEN`), and some large odd ones.
    #[test]
    fn lengths() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let mut data = vec![0u8; 200_003];
        rng.fill_bytes(&mut data);
        let sizes = (0..=300).chain([1023, 1024, 1025, 4097, 65_537, 199_999, 200_003]);
        for n in sizes {
            let seed: u64 = if n % 2 == 0 { 0 } else { rng.gen() };
            let want = crc64_table(seed, &data[..n]);
            assert_eq!(fast(seed, &data[..n]), want, "n={n}");
            assert_eq!(crc64(seed, &data[..n]), want, "n={n}");
            // Unaligned starts too.
            if n + 7 <= data.len() {
                assert_eq!(
                    fast(seed, &data[7..n + 7]),
                    crc64_table(seed, &data[7..n + 7])
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
        #[test]
        fn matches_table(
            data in proptest::collection::vec(any::<u8>(), 0..4096),
            seed in any::<u64>(),
            split in any::<prop::sample::Index>(),
        ) {
            let want = crc64_table(seed, &data);
            prop_assert_eq!(fast(seed, &data), want);
            prop_assert_eq!(crc64(seed, &data), want);
            let (a, b) = data.split_at(split.index(data.len() + 1));
            prop_assert_eq!(fast(fast(seed, a), b), want);
            prop_assert_eq!(crc64(crc64(seed, a), b), want);
        }
    }

    /// Throughput of the table and the fast path, and where the fast path
    /// starts to win:
    /// `cargo test -p redoubt-persist --release --lib crc::fast_path::speed -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, not a check; run in release"]
    fn speed() {
        use std::hint::black_box;
        use std::time::Instant;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut big = vec![0u8; 64 << 20];
        rng.fill_bytes(&mut big);
        let gbps = |f: &dyn Fn(u64, &[u8]) -> u64, data: &[u8], reps: usize| {
            let mut best = f64::MAX;
            for _ in 0..3 {
                let t = Instant::now();
                let mut c = 0;
                for _ in 0..reps {
                    c = f(black_box(c), black_box(data));
                }
                black_box(c);
                best = best.min(t.elapsed().as_secs_f64());
            }
            (data.len() * reps) as f64 / best / 1e9
        };
        let (t, s) = (gbps(&crc64_table, &big, 2), gbps(&fast, &big, 2));
        println!(
            "64 MiB: table {t:.2} GB/s, clmul {s:.2} GB/s ({:.1}x)",
            s / t
        );
        for n in [
            16, 24, 32, 48, 64, 96, 127, 128, 160, 192, 256, 280, 384, 512, 1024,
        ] {
            let reps = (32 << 20) / n;
            let (t, s) = (
                gbps(&crc64_table, &big[..n], reps),
                gbps(&fast, &big[..n], reps),
            );
            println!(
                "{n:5} B: table {t:.2} GB/s, clmul {s:.2} GB/s ({:.2}x)",
                s / t
            );
        }
    }
}
