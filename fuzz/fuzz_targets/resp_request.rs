//! The RESP request parser (multibulk and inline): any bytes give commands,
//! "need more input" or a protocol error, never a panic or a loop that
//! consumes nothing. How the bytes are split into reads must not change
//! the commands parsed. Run: `cargo fuzz run resp_request`.
//!
//! Input layout: the first byte picks the read size (1..=64 bytes per
//! read), the rest is what the client sends.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use redoubt_server::resp::RequestParser;

/// Everything the parser yields for `data` fed `chunk` bytes at a time:
/// the commands, and whether it ended in a protocol error.
fn parse_all(data: &[u8], chunk: usize) -> (Vec<Vec<Bytes>>, bool) {
    // A small proto-max-bulk-len so the length checks are reachable.
    let mut p = RequestParser::new(1 << 10);
    let mut buf = BytesMut::new();
    let mut cmds = Vec::new();
    for part in data.chunks(chunk) {
        buf.extend_from_slice(part);
        // Each command consumes at least one byte: more rounds than bytes
        // means the parser is stuck.
        let mut rounds = 0usize;
        loop {
            rounds += 1;
            assert!(
                rounds <= data.len() + 2,
                "the parser loops without consuming input"
            );
            let before = buf.len();
            match p.parse(&mut buf) {
                Ok(Some(cmd)) => {
                    assert!(
                        buf.len() < before,
                        "a command was returned without consuming input"
                    );
                    cmds.push(cmd);
                }
                Ok(None) => break,
                Err(_) => return (cmds, true),
            }
        }
    }
    (cmds, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let whole = parse_all(rest, rest.len().max(1));
    let split = parse_all(rest, chunk);
    // The inline-request size limit (64 KiB without a newline) depends on
    // what is buffered; inputs far below it must parse the same however
    // they are split.
    if rest.len() < 32 << 10 {
        assert_eq!(whole, split, "read size {chunk} changed the parse");
    }
});
