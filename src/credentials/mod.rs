//! Client credentials: generating ids and secrets, hashing secrets with argon2id, the
//! client record that keeps the hashes (in the operator's namespace), and the tenant Secret
//! that holds the plaintext (rendered as a pure function).

pub mod generate;
pub mod hash;
pub mod record;
pub mod secret;
pub mod template;
