//! Error types of the RDB codec. Every decode error carries the byte offset
//! where it was detected and the key being decoded when one was, so a tool can
//! print "file, offset, key, what was expected".

use std::fmt;

/// What went wrong; the `Display` texts follow Redis's log lines where Redis
/// has one, so operators can search for them.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("unexpected end of input, expected {0}")]
    Truncated(&'static str),
    #[error("Wrong signature trying to load DB from file")]
    BadMagic,
    #[error("Can't handle RDB format version {0}")]
    UnsupportedVersion(u32),
    #[error("Unknown RDB encoding type {0}")]
    UnknownType(u8),
    #[error("Unknown length encoding {0} in rdbLoadLen()")]
    UnknownLength(u8),
    #[error("Unknown RDB string encoding type {0}")]
    UnknownStringEncoding(u8),
    #[error("Invalid LZF compressed string")]
    Lzf,
    #[error("{what} is {len} bytes, more than {limit} allowed")]
    TooLarge {
        what: &'static str,
        len: u64,
        limit: u64,
    },
    /// Structural corruption; `0` says what was expected.
    #[error("corrupt data: expected {0}")]
    Corrupt(String),
    #[error("Wrong RDB checksum expected: ({expected:#018x}) but got ({got:#018x})")]
    Checksum { expected: u64, got: u64 },
    #[error("The RDB file contains module data I can't load: no matching module type '{0}'")]
    ModuleValue(String),
    #[error("The RDB file contains AUX module data I can't load: no matching module '{0}'")]
    ModuleAux(String),
    #[error("FATAL: Data file was created with a Redis server configured to handle more than {0} databases")]
    TooManyDbs(usize),
    #[error("empty collection (Redis skips such keys; RESTORE refuses them)")]
    EmptyKey,
    /// Encoder side: the data cannot be written in the chosen version.
    #[error("cannot write {what} in RDB version {version}")]
    Unrepresentable { what: &'static str, version: u32 },
}

/// An RDB codec error with its position.
#[derive(Debug, thiserror::Error)]
#[error("{kind} (at byte offset {offset}{})", KeySuffix(.key.as_deref()))]
pub struct RdbError {
    /// Offset in the input where the problem was detected (for a nested blob
    /// such as a listpack: the offset just after the blob).
    pub offset: u64,
    /// The key being decoded, when known.
    pub key: Option<Vec<u8>>,
    pub kind: ErrorKind,
}

struct KeySuffix<'a>(Option<&'a [u8]>);

impl fmt::Display for KeySuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => Ok(()),
            Some(k) => {
                let shown = &k[..k.len().min(128)];
                write!(f, ", key \"{}\"", shown.escape_ascii())
            }
        }
    }
}

impl RdbError {
    pub fn new(offset: u64, kind: ErrorKind) -> RdbError {
        RdbError {
            offset,
            key: None,
            kind,
        }
    }

    /// An encoder-side error (no input offset).
    pub fn encode(kind: ErrorKind) -> RdbError {
        RdbError::new(0, kind)
    }

    pub fn with_key(mut self, key: &[u8]) -> RdbError {
        if self.key.is_none() {
            self.key = Some(key.to_vec());
        }
        self
    }

    pub fn is_checksum(&self) -> bool {
        matches!(self.kind, ErrorKind::Checksum { .. })
    }
}

impl From<std::io::Error> for RdbError {
    fn from(e: std::io::Error) -> RdbError {
        RdbError::new(0, ErrorKind::Io(e))
    }
}

pub type Result<T, E = RdbError> = std::result::Result<T, E>;

/// Errors of RESTORE payload decoding, shown with Redis's reply texts.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("DUMP payload version or checksum are wrong")]
    VersionOrChecksum,
    #[error("Bad data format")]
    BadData(#[source] RdbError),
}
