//! Without a crypto backend, building fails with a clear error instead of panicking on
//! the first request. Run with `cargo test --no-default-features --test no_backend`.

#![cfg(not(any(feature = "rust_crypto", feature = "aws_lc_rs")))]

use tower_jwt_auth::{ConfigErrorKind, JwtAuthLayer, MemoryStore, TokenIssuer, VerificationKey};

#[test]
fn building_without_a_crypto_backend_is_a_config_error() {
    let secret = b"a secret that is long enough for HS256!";
    let err = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(secret).unwrap())
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::NoCryptoBackend);
    assert!(err.to_string().contains("rust_crypto"), "{err}");
    assert_eq!(
        TokenIssuer::hs256(secret).unwrap_err().kind(),
        ConfigErrorKind::NoCryptoBackend
    );
}
