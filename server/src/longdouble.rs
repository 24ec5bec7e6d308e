//! INCRBYFLOAT arithmetic in C's `long double`, as Redis does it (see
//! `csrc/longdouble.c` for why).

use crate::resp::Reply;

extern "C" {
    fn redoubt_ld_add(
        a: *const u8,
        alen: usize,
        b: *const u8,
        blen: usize,
        out: *mut u8,
        outlen: usize,
        written: *mut usize,
    ) -> i32;
}

/// `a + b` in long double, formatted as Redis formats it; errors are the
/// replies Redis gives.
pub fn add(a: &[u8], b: &[u8]) -> Result<Vec<u8>, Reply> {
    let mut out = vec![0u8; 5200];
    let mut written = 0usize;
    // SAFETY: the pointers and lengths describe live, correctly sized
    // buffers; the C side writes at most `outlen` bytes into `out`.
    let rc = unsafe {
        redoubt_ld_add(
            a.as_ptr(),
            a.len(),
            b.as_ptr(),
            b.len(),
            out.as_mut_ptr(),
            out.len(),
            &mut written,
        )
    };
    match rc {
        0 => {
            out.truncate(written);
            Ok(out)
        }
        1 | 2 => Err(Reply::err("ERR value is not a valid float")),
        _ => Err(Reply::err("ERR increment would produce NaN or Infinity")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_print_as_redis() {
        assert_eq!(add(b"0.1", b"0.2").unwrap(), b"0.3");
        assert_eq!(add(b"10.5", b"0.1").unwrap(), b"10.6");
        assert_eq!(add(b"3", b"2").unwrap(), b"5");
        assert_eq!(add(b"5.0e3", b"2.0e2").unwrap(), b"5200");
        assert_eq!(add(b"-1", b"1").unwrap(), b"0");
        assert!(add(b"abc", b"1").is_err());
        assert!(add(b"1", b" 1").is_err());
        assert!(add(b"1", b"inf").is_err());
    }
}
