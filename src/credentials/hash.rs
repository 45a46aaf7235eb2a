//! argon2id hashing of client secrets (PHC strings).
//!
//! Parameters: argon2id v19, m = 256 KiB, t = 1, p = 1, chosen for what is hashed: a secret of
//! 256 bits from the OS CSPRNG, not a password. Guessing one from a stolen record takes 2^255
//! hashes on average at any parameter set; memory hardness only slows guessing of low-entropy
//! inputs, and the operator only ever accepts secrets it generated (a lost record is rebuilt only
//! from a Secret version it wrote). The reasoning, with the attack cost at each parameter set, is in
//! docs/credentials.md. Hashes embed their parameters: hashes of the former parameters (OWASP's
//! password baseline, m = 19 MiB, t = 2) keep verifying, and are replaced by the next rotation.

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};

use super::generate::ClientSecret;

/// Memory cost in KiB.
pub const M_COST_KIB: u32 = 256;
/// Iterations.
pub const T_COST: u32 = 1;
/// Parallelism.
pub const P_COST: u32 = 1;

/// An argon2id PHC string (`$argon2id$v=19$m=...`). Its `Debug` does not show the value.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct PhcHash(String);

impl PhcHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PhcHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhcHash(<redacted>)")
    }
}

/// Hashing failed (only on a broken RNG or parameters).
#[derive(Debug, thiserror::Error)]
#[error("argon2id hashing failed: {0}")]
pub struct HashError(String);

fn hasher() -> Result<Argon2<'static>, HashError> {
    let params =
        Params::new(M_COST_KIB, T_COST, P_COST, None).map_err(|e| HashError(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a client secret with a fresh random salt. CPU-heavy: call from a blocking thread.
pub fn hash(secret: &ClientSecret) -> Result<PhcHash, HashError> {
    let phc = hasher()?
        .hash_password(secret.expose().as_bytes())
        .map_err(|e| HashError(e.to_string()))?;
    Ok(PhcHash(phc.to_string()))
}

/// Whether `secret` matches `hash`. A malformed hash never matches. CPU-heavy.
pub fn verify(secret: &str, hash: &PhcHash) -> bool {
    let Ok(parsed) = PasswordHash::new(hash.as_str()) else {
        return false;
    };
    match hasher() {
        Ok(argon) => argon.verify_password(secret.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_phc_with_our_parameters_and_verify() {
        let secret = ClientSecret::new("m2msec_example");
        let h = hash(&secret).unwrap();
        assert!(
            h.as_str().starts_with("$argon2id$v=19$m=256,t=1,p=1$"),
            "{}",
            h.as_str()
        );
        assert!(verify("m2msec_example", &h));
        assert!(!verify("m2msec_examplf", &h));
        assert!(!verify("", &h));
        assert_ne!(hash(&secret).unwrap(), h, "salts differ");
        assert_eq!(format!("{h:?}"), "PhcHash(<redacted>)");
    }

    #[test]
    fn hashes_of_the_former_parameters_keep_verifying() {
        // Made with m = 19456, t = 2 (the parameters before 256 KiB, t = 1).
        let old = PhcHash(
            "$argon2id$v=19$m=19456,t=2,p=1$mccVwv5XTGVWCeY4lsRHdQ$1AmsgbJJpR0z2vJq+6iKtyQjYNrQdkVAP0y0wsYx5x4"
                .into(),
        );
        assert!(verify("m2msec_before_the_upgrade", &old));
        assert!(!verify("m2msec_before_the_upgradf", &old));
    }

    #[test]
    fn malformed_hash_never_matches() {
        assert!(!verify("x", &PhcHash("not a hash".into())));
        assert!(!verify("x", &PhcHash(String::new())));
    }
}
