//! Redoubt's server: RESP protocol, connections, the command executor,
//! configuration and INFO.

pub mod alloc;
pub mod aof;
pub mod busy_poll;
pub mod client;
pub mod commands;
pub mod config;
pub mod conn;
pub mod debug;
pub mod durability;
pub mod exec;
pub mod info;
pub mod longdouble;
pub mod persistence;
pub mod persistence_info;
pub mod prefetch;
pub mod pubsub;
pub mod resp;
pub mod run;
pub mod util;

/// Redoubt's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The Redis version Redoubt answers as (HELLO, INFO redis_version), so that
/// clients enable the Redis 7.0 features it implements.
pub const REDIS_VERSION: &str = "7.0.15";
