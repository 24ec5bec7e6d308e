//! CRC-64 as Redis computes it: the Jones polynomial, reflected, init 0,
//! no final xor (check value for "123456789" is 0xE9C6D914C4B8D9CA).
//!
//! Implemented slice-by-8 rather than through the `crc64` crate: that crate
//! is byte-at-a-time, and the RDB loader checksums every byte it reads, so
//! the CRC is on the hot path of loading a multi-GB dump.

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
pub fn crc64(mut crc: u64, data: &[u8]) -> u64 {
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
