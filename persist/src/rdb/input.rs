//! Buffered, offset-tracking, checksumming input for the decoder.
//!
//! Own buffering instead of `BufReader` so the CRC can be computed over
//! whole buffer chunks as they are consumed (one pass, slice-by-8) rather
//! than byte by byte, and so every error knows its exact offset.

use super::crc::crc64;
use super::error::{ErrorKind, RdbError, Result};
use std::io::Read;

const BUF_SIZE: usize = 64 * 1024;
/// When the total input size is unknown, strings longer than this are read
/// in steps of this size, so a corrupt length cannot make us allocate more
/// than roughly what the input really holds.
const GROW_STEP: usize = 1 << 20;

pub struct Input<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// Bytes of `buf[..crc_pos]` already folded into `crc`.
    crc_pos: usize,
    crc: u64,
    /// Absolute offset of `buf[0]`.
    base: u64,
    /// Total input length when known (files, payloads).
    total: Option<u64>,
    eof: bool,
}

impl<R: Read> Input<R> {
    pub fn new(inner: R, total: Option<u64>) -> Input<R> {
        Input {
            inner,
            buf: vec![0u8; BUF_SIZE].into_boxed_slice(),
            pos: 0,
            end: 0,
            crc_pos: 0,
            crc: 0,
            base: 0,
            total,
            eof: false,
        }
    }

    /// Offset of the next byte to be read.
    #[inline]
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub fn err(&self, kind: ErrorKind) -> RdbError {
        RdbError::new(self.offset(), kind)
    }

    pub fn corrupt(&self, what: impl Into<String>) -> RdbError {
        self.err(ErrorKind::Corrupt(what.into()))
    }

    /// Bytes known to remain, when the total is known.
    pub fn remaining(&self) -> Option<u64> {
        self.total.map(|t| t.saturating_sub(self.offset()))
    }

    fn refill(&mut self, what: &'static str) -> Result<()> {
        debug_assert!(self.pos == self.end);
        if self.eof {
            return Err(self.err(ErrorKind::Truncated(what)));
        }
        self.crc = crc64(self.crc, &self.buf[self.crc_pos..self.end]);
        self.base += self.end as u64;
        self.pos = 0;
        self.end = 0;
        self.crc_pos = 0;
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    return Err(self.err(ErrorKind::Truncated(what)));
                }
                Ok(n) => {
                    self.end = n;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.err(ErrorKind::Io(e))),
            }
        }
    }

    #[inline]
    pub fn read_u8(&mut self, what: &'static str) -> Result<u8> {
        if self.pos == self.end {
            self.refill(what)?;
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    pub fn read_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        if self.end - self.pos >= N {
            out.copy_from_slice(&self.buf[self.pos..self.pos + N]);
            self.pos += N;
        } else {
            self.fill_slow(&mut out, what)?;
        }
        Ok(out)
    }

    fn fill_slow(&mut self, mut out: &mut [u8], what: &'static str) -> Result<()> {
        while !out.is_empty() {
            if self.pos == self.end {
                self.refill(what)?;
            }
            let n = (self.end - self.pos).min(out.len());
            out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            out = &mut out[n..];
        }
        Ok(())
    }

    /// Reads exactly `n` bytes (a length taken from the input) into a new
    /// vector. The allocation is bounded by the known remaining input, or,
    /// when that is unknown, grows step by step as data actually arrives.
    pub fn read_vec(&mut self, n: u64, what: &'static str) -> Result<Vec<u8>> {
        if let Some(rem) = self.remaining() {
            if n > rem {
                return Err(self.err(ErrorKind::Truncated(what)));
            }
        }
        let n_usize = usize::try_from(n).map_err(|_| self.err(ErrorKind::Truncated(what)))?;
        // Fast path: everything is in the buffer.
        if self.end - self.pos >= n_usize {
            let v = self.buf[self.pos..self.pos + n_usize].to_vec();
            self.pos += n_usize;
            return Ok(v);
        }
        if self.total.is_some() || n_usize <= GROW_STEP {
            let mut v = vec![0u8; n_usize];
            self.fill_slow(&mut v, what)?;
            return Ok(v);
        }
        let mut v = Vec::new();
        let mut left = n_usize;
        while left > 0 {
            let step = left.min(GROW_STEP);
            let start = v.len();
            v.resize(start + step, 0);
            self.fill_slow(&mut v[start..], what)?;
            left -= step;
        }
        Ok(v)
    }

    /// CRC of every byte consumed so far.
    pub fn crc(&mut self) -> u64 {
        self.crc = crc64(self.crc, &self.buf[self.crc_pos..self.pos]);
        self.crc_pos = self.pos;
        self.crc
    }
}
