use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
};

use super::*;

#[test]
fn rfc7638_example_thumbprint() {
    // RFC 7638 §3.1.
    let jwk = Jwk {
        kty: "RSA".into(),
        crv: None,
        x: None,
        y: None,
        n: Some("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into()),
        e: Some("AQAB".into()),
        use_: "sig".into(),
        alg: "RS256".into(),
        kid: String::new(),
    };
    assert_eq!(
        thumbprint(&jwk),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

fn verify(alg: Algorithm, key: &SigningKey, jwt: &str) -> bool {
    let (input, sig) = jwt.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let public: Vec<u8> = match alg {
        Algorithm::ES256 => {
            let mut p = vec![4];
            p.extend(URL_SAFE_NO_PAD.decode(key.jwk.x.as_ref().unwrap()).unwrap());
            p.extend(URL_SAFE_NO_PAD.decode(key.jwk.y.as_ref().unwrap()).unwrap());
            p
        }
        Algorithm::EdDSA => URL_SAFE_NO_PAD.decode(key.jwk.x.as_ref().unwrap()).unwrap(),
        Algorithm::RS256 => {
            let Pair::Rs(pair) = &key.pair else {
                unreachable!()
            };
            pair.public_key().as_ref().to_vec()
        }
    };
    let algorithm: &dyn signature::VerificationAlgorithm = match alg {
        Algorithm::ES256 => &ECDSA_P256_SHA256_FIXED,
        Algorithm::EdDSA => &ED25519,
        Algorithm::RS256 => &RSA_PKCS1_2048_8192_SHA256,
    };
    UnparsedPublicKey::new(algorithm, public)
        .verify(input.as_bytes(), &sig)
        .is_ok()
}

#[test]
fn every_algorithm_signs_verifiably_with_a_thumbprint_kid() {
    for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
        let pkcs8 = generate_pkcs8(alg).unwrap();
        let key = SigningKey::from_pkcs8(alg, &pkcs8).unwrap();
        assert_eq!(key.kid, thumbprint(&key.jwk));
        assert_eq!(key.jwk.kid, key.kid);
        let jwt = key
            .sign("at+jwt", &serde_json::json!({"sub": "x"}))
            .unwrap();
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(jwt.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], alg.as_str());
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["kid"], key.kid);
        assert!(verify(alg, &key, &jwt), "{alg:?}");
        let mut tampered = jwt.clone();
        tampered.insert(tampered.find('.').unwrap() + 2, 'A');
        assert!(!verify(alg, &key, &tampered));
    }
}

#[test]
fn garbage_keys_are_errors() {
    assert!(SigningKey::from_pkcs8(Algorithm::ES256, b"nope").is_err());
}
