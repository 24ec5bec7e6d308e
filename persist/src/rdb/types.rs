//! RDB constants: format versions, opcodes, object types.

/// Newest version this codec reads (Redis 7.4 / 8.0-M01).
pub const RDB_VERSION_MAX: u32 = 12;
/// Version Redis 7.0 writes and our default.
pub const RDB_VERSION_DEFAULT: u32 = 10;

pub const OP_SLOT_INFO: u8 = 244;
pub const OP_FUNCTION2: u8 = 245;
pub const OP_FUNCTION_PRE_GA: u8 = 246;
pub const OP_MODULE_AUX: u8 = 247;
pub const OP_IDLE: u8 = 248;
pub const OP_FREQ: u8 = 249;
pub const OP_AUX: u8 = 250;
pub const OP_RESIZEDB: u8 = 251;
pub const OP_EXPIRETIME_MS: u8 = 252;
pub const OP_EXPIRETIME: u8 = 253;
pub const OP_SELECTDB: u8 = 254;
pub const OP_EOF: u8 = 255;

pub const TYPE_STRING: u8 = 0;
pub const TYPE_LIST: u8 = 1;
pub const TYPE_SET: u8 = 2;
pub const TYPE_ZSET: u8 = 3;
pub const TYPE_HASH: u8 = 4;
pub const TYPE_ZSET_2: u8 = 5;
pub const TYPE_MODULE_PRE_GA: u8 = 6;
pub const TYPE_MODULE_2: u8 = 7;
pub const TYPE_HASH_ZIPMAP: u8 = 9;
pub const TYPE_LIST_ZIPLIST: u8 = 10;
pub const TYPE_SET_INTSET: u8 = 11;
pub const TYPE_ZSET_ZIPLIST: u8 = 12;
pub const TYPE_HASH_ZIPLIST: u8 = 13;
pub const TYPE_LIST_QUICKLIST: u8 = 14;
pub const TYPE_STREAM_LISTPACKS: u8 = 15;
pub const TYPE_HASH_LISTPACK: u8 = 16;
pub const TYPE_ZSET_LISTPACK: u8 = 17;
pub const TYPE_LIST_QUICKLIST_2: u8 = 18;
pub const TYPE_STREAM_LISTPACKS_2: u8 = 19;
pub const TYPE_SET_LISTPACK: u8 = 20;
pub const TYPE_STREAM_LISTPACKS_3: u8 = 21;
pub const TYPE_HASH_METADATA_PRE_GA: u8 = 22;
pub const TYPE_HASH_LISTPACK_EX_PRE_GA: u8 = 23;
pub const TYPE_HASH_METADATA: u8 = 24;
pub const TYPE_HASH_LISTPACK_EX: u8 = 25;

/// Quicklist v2 node containers.
pub const QUICKLIST_NODE_PLAIN: u64 = 1;
pub const QUICKLIST_NODE_PACKED: u64 = 2;

/// Largest hash-field expiry Redis accepts (2^48 - 1 ms).
pub const HFE_MAX_EXPIRE: u64 = (1 << 48) - 1;

/// The encoding name `OBJECT ENCODING` shows for a value stored with this
/// RDB type (as loaded, before any threshold conversion).
pub fn type_encoding_name(t: u8) -> &'static str {
    match t {
        TYPE_STRING => "string",
        TYPE_LIST => "linkedlist",
        TYPE_SET => "hashtable",
        TYPE_ZSET | TYPE_ZSET_2 => "skiplist",
        TYPE_HASH | TYPE_HASH_METADATA | TYPE_HASH_METADATA_PRE_GA => "hashtable",
        TYPE_MODULE_PRE_GA | TYPE_MODULE_2 => "module",
        TYPE_HASH_ZIPMAP => "zipmap",
        TYPE_LIST_ZIPLIST | TYPE_ZSET_ZIPLIST | TYPE_HASH_ZIPLIST => "ziplist",
        TYPE_SET_INTSET => "intset",
        TYPE_LIST_QUICKLIST | TYPE_LIST_QUICKLIST_2 => "quicklist",
        TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 | TYPE_STREAM_LISTPACKS_3 => "stream",
        TYPE_HASH_LISTPACK | TYPE_ZSET_LISTPACK | TYPE_SET_LISTPACK => "listpack",
        TYPE_HASH_LISTPACK_EX | TYPE_HASH_LISTPACK_EX_PRE_GA => "listpackex",
        _ => "unknown",
    }
}

/// Whether an object type byte is one this codec can read.
pub fn is_object_type(t: u8) -> bool {
    matches!(t, 0..=7 | 9..=25)
}

/// Decodes a 64-bit module type id into its 9-character name and encoding
/// version (spec §12).
pub fn module_type_name(id: u64) -> (String, u32) {
    const CHARSET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let encver = (id & 1023) as u32;
    let mut v = id >> 10;
    let mut name = [0u8; 9];
    for slot in name.iter_mut().rev() {
        *slot = CHARSET[(v & 63) as usize];
        v >>= 6;
    }
    (String::from_utf8_lossy(&name).into_owned(), encver)
}
