//! Signing keys: their lifecycle as pure policy (`lifecycle.rs`: publish ahead, activate,
//! retire, remove), reading the key Secret without ever replacing one that cannot be read
//! (`secret.rs`), and the loops that keep them (`manager.rs`: every replica's watch, the
//! leader's writes).

pub mod lifecycle;
pub mod manager;
pub mod secret;

pub use lifecycle::{KEYS_SECRET, KeyPolicy, KeyRing, StoredKey, StoredKeySet};
