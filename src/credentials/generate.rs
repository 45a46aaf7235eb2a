//! New client ids and secrets.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

/// Prefix of every client secret, so leak scanners can recognise one.
pub const SECRET_PREFIX: &str = "m2msec_";
/// Prefix of every client id.
pub const CLIENT_ID_PREFIX: &str = "m2m_";
/// Random bytes in a client secret: 256 bits.
pub const SECRET_BYTES: usize = 32;

/// A client secret in plaintext. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps an existing secret (read from a Secret or a token request).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plaintext, for writing into the tenant Secret or hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// The OS random number generator failed.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(String);

/// A new client secret: [`SECRET_PREFIX`] and 256 bits from the OS CSPRNG, base64url.
pub fn client_secret() -> Result<ClientSecret, RandomError> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| RandomError(e.to_string()))?;
    Ok(ClientSecret(format!(
        "{SECRET_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(bytes)
    )))
}

/// The client id of the M2MApp with this UID. Derived, not stored: it is the same after an
/// operator restart, a leader change or a lost status, and a new object (new UID) gets a new id.
pub fn client_id(app_uid: &str) -> String {
    let hex: String = app_uid
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    format!("{CLIENT_ID_PREFIX}{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_urlsafe_and_256_bits() {
        let a = client_secret().unwrap();
        let b = client_secret().unwrap();
        assert_ne!(a, b);
        let body = a.expose().strip_prefix(SECRET_PREFIX).expect("prefix");
        assert_eq!(URL_SAFE_NO_PAD.decode(body).unwrap().len(), 32);
        assert!(
            body.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(format!("{a:?}"), "ClientSecret(<redacted>)");
    }

    #[test]
    fn client_id_is_derived_from_the_uid() {
        let uid = "6F1C2A9E-1b2c-4d5e-8f90-a1b2c3d4e5f6";
        assert_eq!(client_id(uid), "m2m_6f1c2a9e1b2c4d5e8f90a1b2c3d4e5f6");
        assert_eq!(client_id(uid), client_id(uid));
        assert_ne!(
            client_id(uid),
            client_id("00000000-0000-0000-0000-000000000000")
        );
    }
}
