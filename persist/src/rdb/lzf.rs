//! LZF, the compressor Redis uses for strings in RDB files. Own
//! implementation of the format (see spec §14): both directions are small,
//! and owning them lets the decompressor validate every step instead of
//! trusting lengths from the file.

mod head;

/// Why a compressed string is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LzfError;

/// Decompresses `input` into `out`, which must end up exactly `out.len()`
/// bytes long (the length the file declared). `out` is overwritten.
pub fn decompress_into(input: &[u8], out: &mut [u8]) -> Result<(), LzfError> {
    let mut ip = 0usize;
    let mut op = 0usize;
    let olen = out.len();
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            let src = input.get(ip..ip + run).ok_or(LzfError)?;
            let dst = out.get_mut(op..op + run).ok_or(LzfError)?;
            dst.copy_from_slice(src);
            ip += run;
            op += run;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(ip).ok_or(LzfError)? as usize;
                ip += 1;
            }
            let lo = *input.get(ip).ok_or(LzfError)? as usize;
            ip += 1;
            let dist = ((ctrl & 0x1f) << 8) + lo + 1;
            let len = len + 2;
            if dist > op || op + len > olen {
                return Err(LzfError);
            }
            let start = op - dist;
            if dist >= len {
                out.copy_within(start..start + len, op);
            } else if dist == 1 {
                // A run of one repeated byte (e.g. zero padding).
                let b = out[start];
                out[op..op + len].fill(b);
            } else {
                // Overlapping copy: the defined meaning is byte by byte (it
                // replicates the last `dist` bytes). Copying whole periods
                // of `dist` bytes gives the same result.
                let mut done = 0;
                while done < len {
                    let n = dist.min(len - done);
                    out.copy_within(start + done..start + done + n, op + done);
                    done += n;
                }
            }
            op += len;
        }
    }
    if op == olen {
        Ok(())
    } else {
        Err(LzfError)
    }
}

/// Largest hash table (log2 of entries); small inputs use a smaller one
/// so compressing many short strings does not zero a big table each time.
const HLOG_MAX: u32 = 14;
const MAX_LIT: usize = 32;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

/// Compresses `input`, giving up (None) as soon as the output would exceed
/// `max_out` bytes: Redis keeps a compressed string only when it saves at
/// least 4 bytes, so the caller passes `len - 4` or less.
pub fn compress(input: &[u8], max_out: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    compress_into(input, max_out, &mut out).then_some(out)
}

thread_local! {
    /// The hash table, kept per thread: a snapshot compresses millions of
    /// short strings, and a table allocated (and zeroed by calloc) for each
    /// was a third of the compressor's time.
    static HTAB: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Length of the common prefix of `input[a..]` and `input[b..]`, from `len`
/// on and at most `maxlen`; `a < b` and `b + maxlen <= input.len()`.
#[inline]
fn match_len(input: &[u8], a: usize, b: usize, mut len: usize, maxlen: usize) -> usize {
    // Eight bytes at a time: a value that is one repeated byte (a common
    // padding) matches up to the longest reference in about 33 steps
    // instead of 264.
    while len + 8 <= maxlen {
        let x = u64::from_le_bytes(input[a + len..a + len + 8].try_into().unwrap_or([0; 8]));
        let y = u64::from_le_bytes(input[b + len..b + len + 8].try_into().unwrap_or([0; 8]));
        let d = x ^ y;
        if d != 0 {
            return len + (d.trailing_zeros() / 8) as usize;
        }
        len += 8;
    }
    while len < maxlen && input[a + len] == input[b + len] {
        len += 1;
    }
    len
}

/// Appends the compressed form of `input` to `out` and returns true, or
/// returns false with `out` as it was when the compressed form would
/// exceed `max_out` bytes. The output is the same as [`compress`]'s.
pub fn compress_into(input: &[u8], max_out: usize, out: &mut Vec<u8>) -> bool {
    compress_until(input, max_out, out, usize::MAX)
}

/// Input bytes [`compress_into_quick`] scans for a first repeat before it
/// gives up.
pub const QUICK_PROBE: usize = head::PROBE;

// The scan checks for a back reference when a literal run closes, every
// `MAX_LIT` bytes: the probe ends on one of those checks.
const _: () = assert!(QUICK_PROBE.is_multiple_of(MAX_LIT));

/// As [`compress_into`], but gives up when the first [`QUICK_PROBE`] bytes
/// of a longer input hold no repeat the compressor can use, which is
/// checked before scanning (see the `head` module). Random or already
/// compressed bytes then cost that check instead of a full scan; what it
/// does compress is byte for byte what [`compress_into`] writes. For
/// snapshots, where a string kept uncompressed is still a valid record;
/// not for output that must equal Redis's (DUMP).
pub fn compress_into_quick(input: &[u8], max_out: usize, out: &mut Vec<u8>) -> bool {
    compress_until(input, max_out, out, QUICK_PROBE)
}

fn compress_until(input: &[u8], max_out: usize, out: &mut Vec<u8>, give_up_at: usize) -> bool {
    let n = input.len();
    if n < 4 {
        return false;
    }
    // With no three-byte sequence repeated in the probe, no back reference
    // starts there, and the scan below would reach the literal run closing
    // at `QUICK_PROBE` with none and give up. It gets that far only when
    // that position's sequence is scanned, i.e. with `head::HEAD` bytes.
    if give_up_at == QUICK_PROBE {
        if let Some(h) = input.first_chunk::<{ head::HEAD }>() {
            if !head::repeats(h) {
                return false;
            }
        }
    }
    HTAB.with(|t| match t.try_borrow_mut() {
        Ok(mut htab) => compress_with(input, max_out, out, &mut htab, give_up_at),
        // Not reentrant in practice; a table of its own keeps it correct.
        Err(_) => compress_with(input, max_out, out, &mut Vec::new(), give_up_at),
    })
}

/// Room past `max_out` in the output buffer: the length is checked when a
/// literal run closes and after each back reference, and between two
/// checks at most a full run (32 bytes and its control byte) and the next
/// run's control byte are written.
const SLACK: usize = MAX_LIT + 16;

/// Compresses as [`compress_into`] does; gives up once `give_up_at`
/// input bytes are behind with no back reference found (checked when a
/// full literal run closes, so the hot loop pays nothing for it).
fn compress_with(
    input: &[u8],
    max_out: usize,
    out: &mut Vec<u8>,
    htab: &mut Vec<u32>,
    give_up_at: usize,
) -> bool {
    let n = input.len();
    // No back reference written yet.
    let mut matched = false;
    let base = out.len();
    let hlog = (usize::BITS - n.leading_zeros()).clamp(8, HLOG_MAX);
    let size = 1usize << hlog;
    if htab.len() < size {
        htab.resize(size, 0);
    }
    let htab = &mut htab[..size];
    htab.fill(0);
    let hash = |v: u32| -> usize { (v.wrapping_mul(0x9E37_79B1) >> (32 - hlog)) as usize };
    let load3 = |p: usize| {
        (u32::from(input[p]) << 16) | (u32::from(input[p + 1]) << 8) | u32::from(input[p + 2])
    };
    // The output is written by index into a buffer sized up front; a
    // compressed form only grows (the one byte ever taken back is an empty
    // run's control byte), so checking its length now and then gives the
    // same verdict as checking it after every byte.
    let cap = max_out.min(n + n / 16 + 8) + SLACK;
    out.resize(base + cap, 0);
    let o = &mut out[base..];
    let fail = |out: &mut Vec<u8>| {
        out.truncate(base);
        false
    };
    // Literal run being built: index in `o` of its control byte.
    let mut lit_start = 0usize;
    let mut op = 1usize;
    let mut lit = 0usize;
    let mut ip = 0usize;
    // The three bytes at `ip`, rolled forward one byte per literal.
    let mut v = if n > 2 { load3(0) } else { 0 };
    while ip + 2 < n {
        let h = hash(v);
        let cand = htab[h] as usize;
        htab[h] = (ip + 1) as u32; // +1 so 0 means empty
        if cand > 0 {
            let r = cand - 1;
            let off = ip - r;
            if off > 0 && off <= MAX_OFF && load3(r) == v {
                let maxlen = (n - ip).min(MAX_REF);
                let len = match_len(input, r, ip, 3, maxlen);
                // Close the literal run (drop it when empty).
                if lit == 0 {
                    op -= 1;
                } else {
                    o[lit_start] = (lit - 1) as u8;
                }
                let l = len - 2;
                let d = off - 1;
                if l < 7 {
                    o[op] = ((l << 5) | (d >> 8)) as u8;
                    op += 1;
                } else {
                    o[op] = ((7 << 5) | (d >> 8)) as u8;
                    o[op + 1] = (l - 7) as u8;
                    op += 2;
                }
                o[op] = (d & 0xff) as u8;
                op += 1;
                matched = true;
                if op > max_out {
                    return fail(out);
                }
                // Index only the last two positions of the match, as
                // liblzf's "very fast" mode does: it is cheaper, and keeping
                // older positions in the table compresses Redis-like data
                // (listpacks) better than indexing every byte.
                let end = ip + len;
                for p in end.saturating_sub(2).max(ip + 1)..end {
                    if p + 2 < n {
                        htab[hash(load3(p))] = (p + 1) as u32;
                    }
                }
                ip = end;
                if ip + 2 < n {
                    v = load3(ip);
                }
                lit_start = op;
                op += 1;
                lit = 0;
                continue;
            }
        }
        o[op] = input[ip];
        op += 1;
        lit += 1;
        ip += 1;
        if ip + 2 < n {
            v = ((v << 8) | u32::from(input[ip + 2])) & 0x00FF_FFFF;
        }
        if lit == MAX_LIT {
            o[lit_start] = (MAX_LIT - 1) as u8;
            if op > max_out || (!matched && ip >= give_up_at) {
                return fail(out);
            }
            lit_start = op;
            op += 1;
            lit = 0;
        }
    }
    while ip < n {
        o[op] = input[ip];
        op += 1;
        lit += 1;
        ip += 1;
        if lit == MAX_LIT {
            o[lit_start] = (MAX_LIT - 1) as u8;
            lit_start = op;
            op += 1;
            lit = 0;
        }
    }
    if lit == 0 {
        op -= 1;
    } else {
        o[lit_start] = (lit - 1) as u8;
    }
    if op > max_out {
        return fail(out);
    }
    out.truncate(base + op);
    true
}

/// The compressor as it was before [`compress_into`]: byte-for-byte
/// reference for its output.
#[cfg(test)]
mod reference {
    use super::{HLOG_MAX, MAX_LIT, MAX_OFF, MAX_REF};

    /// Compresses `input`, giving up (None) as soon as the output would exceed
    /// `max_out` bytes: Redis keeps a compressed string only when it saves at
    /// least 4 bytes, so the caller passes `len - 4` or less.
    pub(super) fn compress(input: &[u8], max_out: usize) -> Option<Vec<u8>> {
        let n = input.len();
        if n < 4 {
            return None;
        }
        let mut out: Vec<u8> = Vec::with_capacity(max_out.min(n + n / 16 + 8));
        let hlog = (usize::BITS - n.leading_zeros()).clamp(8, HLOG_MAX);
        let mut htab = vec![0u32; 1 << hlog];
        let hash = |p: usize| -> usize {
            let v = (u32::from(input[p]) << 16)
                | (u32::from(input[p + 1]) << 8)
                | u32::from(input[p + 2]);
            (v.wrapping_mul(0x9E37_79B1) >> (32 - hlog)) as usize
        };
        // Literal run being built: start index in `out` of its control byte.
        let mut lit_start = out.len();
        out.push(0);
        let mut lit = 0usize;
        let mut ip = 0usize;
        while ip + 2 < n {
            let h = hash(ip);
            let cand = htab[h] as usize;
            htab[h] = (ip + 1) as u32; // +1 so 0 means empty
            if cand > 0 {
                let r = cand - 1;
                let off = ip - r;
                if off > 0
                    && off <= MAX_OFF
                    && input[r] == input[ip]
                    && input[r + 1] == input[ip + 1]
                    && input[r + 2] == input[ip + 2]
                {
                    let maxlen = (n - ip).min(MAX_REF);
                    let mut len = 3;
                    while len < maxlen && input[r + len] == input[ip + len] {
                        len += 1;
                    }
                    // Close the literal run (drop it when empty).
                    if lit == 0 {
                        out.pop();
                    } else {
                        out[lit_start] = (lit - 1) as u8;
                    }
                    let l = len - 2;
                    let o = off - 1;
                    if l < 7 {
                        out.push(((l << 5) | (o >> 8)) as u8);
                    } else {
                        out.push(((7 << 5) | (o >> 8)) as u8);
                        out.push((l - 7) as u8);
                    }
                    out.push((o & 0xff) as u8);
                    if out.len() > max_out {
                        return None;
                    }
                    // Index only the last two positions of the match, as
                    // liblzf's "very fast" mode does: it is cheaper, and keeping
                    // older positions in the table compresses Redis-like data
                    // (listpacks) better than indexing every byte.
                    let end = ip + len;
                    for p in end.saturating_sub(2).max(ip + 1)..end {
                        if p + 2 < n {
                            let h = hash(p);
                            htab[h] = (p + 1) as u32;
                        }
                    }
                    ip = end;
                    lit_start = out.len();
                    out.push(0);
                    lit = 0;
                    continue;
                }
            }
            out.push(input[ip]);
            lit += 1;
            ip += 1;
            if lit == MAX_LIT {
                out[lit_start] = (MAX_LIT - 1) as u8;
                lit_start = out.len();
                out.push(0);
                lit = 0;
            }
            if out.len() > max_out {
                return None;
            }
        }
        while ip < n {
            out.push(input[ip]);
            lit += 1;
            ip += 1;
            if lit == MAX_LIT {
                out[lit_start] = (MAX_LIT - 1) as u8;
                lit_start = out.len();
                out.push(0);
                lit = 0;
            }
        }
        if lit == 0 {
            out.pop();
        } else {
            out[lit_start] = (lit - 1) as u8;
        }
        if out.len() > max_out {
            None
        } else {
            Some(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(data: &[u8]) {
        if let Some(c) = compress(data, data.len() + 64) {
            let mut out = vec![0u8; data.len()];
            decompress_into(&c, &mut out).unwrap();
            assert_eq!(out, data);
        }
    }

    #[test]
    fn roundtrips() {
        roundtrip(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        roundtrip(b"abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcxyz");
        let v: Vec<u8> = (0..20000u32)
            .map(|i| (i % 251) as u8 ^ (i / 700) as u8)
            .collect();
        roundtrip(&v);
        let rnd: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        roundtrip(&rnd);
        let mut long_run = vec![b'x'; 10000];
        long_run.extend_from_slice(b"tail");
        roundtrip(&long_run);
    }

    #[test]
    fn compresses_repetitive_and_refuses_random() {
        let c = compress(&[b'a'; 100], 96).unwrap();
        assert!(c.len() < 10);
        let rnd: Vec<u8> = (0..64u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        assert!(compress(&rnd, 60).is_none());
    }

    /// Inputs mixing runs, repeats and noise, as strings in a dump are.
    fn mixed(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed | 1;
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 4 {
                0 => v.extend(std::iter::repeat_n(x as u8, (x >> 8) as usize % 300)),
                1 => {
                    let back = (x >> 8) as usize % 9000 + 1;
                    let len = (x >> 24) as usize % 280;
                    for _ in 0..len {
                        let b = v.len().checked_sub(back).map_or(b'a', |i| v[i]);
                        v.push(b);
                    }
                }
                _ => v.extend((0..(x >> 8) % 40).map(|i| (x >> (i % 56)) as u8)),
            }
        }
        v.truncate(n);
        v
    }

    #[test]
    fn output_is_byte_for_byte_the_reference_one() {
        for seed in 0..400u64 {
            let n = [0, 3, 4, 21, 256, 257, 1000, 20_000][seed as usize % 8] + seed as usize % 5;
            let data = mixed(seed, n);
            for max_out in [n.saturating_sub(4), n / 2, n + 64] {
                assert_eq!(
                    compress(&data, max_out),
                    reference::compress(&data, max_out),
                    "seed {seed} len {n} max {max_out}"
                );
            }
        }
        for n in [21, 255, 256, 300, 5000] {
            let data = vec![b'x'; n];
            assert_eq!(compress(&data, n - 4), reference::compress(&data, n - 4));
        }
    }

    #[test]
    fn compress_into_appends_or_leaves_the_buffer_as_it_was() {
        let mut out = b"head".to_vec();
        assert!(compress_into(&[b'x'; 256], 252, &mut out));
        assert_eq!(&out[..4], b"head");
        assert_eq!(Some(out[4..].to_vec()), compress(&[b'x'; 256], 252));
        let before = out.clone();
        let rnd: Vec<u8> = (0..64u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        assert!(!compress_into(&rnd, 60, &mut out));
        assert_eq!(out, before);
    }

    fn quick(data: &[u8], max_out: usize) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        compress_into_quick(data, max_out, &mut out).then_some(out)
    }

    /// The quick compressor writes what the exact one writes, or gives up
    /// (never on an input it reaches a repeat in within its probe).
    #[test]
    fn quick_output_is_the_exact_one_or_none() {
        let mut gave_up = 0;
        for seed in 0..400u64 {
            let n = [0, 3, 4, 21, 64, 256, 1000, 20_000][seed as usize % 8] + seed as usize % 5;
            let data = mixed(seed, n);
            for max_out in [n.saturating_sub(4), n / 2, n + 64] {
                let q = quick(&data, max_out);
                let exact = compress(&data, max_out);
                if q.is_none() && exact.is_some() {
                    gave_up += 1;
                } else {
                    assert_eq!(q, exact, "seed {seed} len {n} max {max_out}");
                }
            }
        }
        // `mixed` starts most inputs with a run or a repeat.
        assert!(gave_up < 100, "{gave_up}");
        for n in [21, 64, 65, 256, 5000] {
            let data = vec![b'x'; n];
            assert_eq!(quick(&data, n - 4), compress(&data, n - 4));
        }
    }

    /// redis-benchmark's values: bytes of a 64-letter alphabet with no
    /// repeat. The quick compressor gives up after its probe; with a repeat
    /// only past the probe it gives up too, where the exact one compresses.
    #[test]
    fn quick_gives_up_on_a_head_without_repeats() {
        let mut x = 1234u32;
        let rnd: Vec<u8> = (0..256)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                b'0' + ((x >> 16) & 63) as u8
            })
            .collect();
        let mut out = b"head".to_vec();
        assert!(!compress_into_quick(&rnd, 252, &mut out));
        assert_eq!(out, b"head");
        assert_eq!(compress(&rnd, 252), None);
        let mut late = rnd[..QUICK_PROBE + 40].to_vec();
        late.extend(std::iter::repeat_n(b'z', 200));
        let n = late.len();
        assert!(compress(&late, n - 4).is_some());
        assert_eq!(quick(&late, n - 4), None);
        // Short inputs are scanned whole, as before.
        let short = &rnd[..QUICK_PROBE - 1];
        let mut short_rep = short.to_vec();
        short_rep.extend_from_slice(&short[..16]);
        assert_eq!(
            quick(&short_rep, short_rep.len() - 4),
            compress(&short_rep, short_rep.len() - 4)
        );
    }

    /// The shortcut before the quick scan changes no verdict: the quick
    /// compressor answers as its scan alone does, for inputs around the
    /// probe's length with a repeat planted at every pair of positions,
    /// and for random inputs over alphabets from 2 to 256 letters.
    #[test]
    fn quick_shortcut_gives_the_scans_verdict() {
        let scan = |data: &[u8], max_out: usize| {
            let mut out = Vec::new();
            compress_with(data, max_out, &mut out, &mut Vec::new(), QUICK_PROBE).then_some(out)
        };
        let mut compared = 0;
        for n in [
            QUICK_PROBE,
            QUICK_PROBE + 1,
            QUICK_PROBE + 2,
            QUICK_PROBE + 3,
            100,
        ] {
            // Distinct bytes: no sequence repeats until one is planted.
            let base: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
            for i in 0..n - 2 {
                for j in 0..i {
                    let mut d = base.clone();
                    d.copy_within(j..j + 3, i);
                    assert_eq!(quick(&d, n - 4), scan(&d, n - 4), "len {n}, {j} at {i}");
                    compared += 1;
                }
            }
        }
        let mut x = 7u64;
        for trial in 0..4000 {
            let alphabet = [2u64, 8, 64, 256][trial % 4];
            let n = 40 + trial % 300;
            let d: Vec<u8> = (0..n)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((x >> 33) % alphabet) as u8
                })
                .collect();
            assert_eq!(quick(&d, n - 4), scan(&d, n - 4), "trial {trial}");
        }
        assert!(compared > 5000);
    }

    #[test]
    fn decompress_rejects_garbage() {
        let mut out = [0u8; 4];
        assert!(decompress_into(&[0x20, 0x00], &mut out).is_err()); // ref before start
        assert!(decompress_into(&[0x05, b'a'], &mut out).is_err()); // short literal
        assert!(decompress_into(&[0x00, b'a'], &mut out).is_err()); // short output
        let mut big = [0u8; 3];
        assert!(decompress_into(&[0x03, 1, 2, 3, 4], &mut big).is_err()); // overflow
    }
}
