//! Logout through the layer: revoking one token, logging out everywhere, the same-second
//! cases, and how long revocations are kept.

mod support;

use std::time::Duration;

use http::StatusCode;
use serde_json::json;
use support::{clock::*, service::*, tokens::*};
use tower_jwt_auth::{
    JwtAuthLayer, MemoryStore, RejectionKind, RevocationStore, TokenInfo, TokenIssuer,
    VerificationKey,
};

/// The `TokenInfo` the layer puts into extensions for `token`.
async fn info_of<R: RevocationStore>(layer: &JwtAuthLayer<R>, token: &str) -> TokenInfo {
    let seen = send(&app(layer), bearer(token)).await;
    match seen.info {
        Some(info) => info,
        None => panic!("token refused: {:?}", seen.rejection),
    }
}

#[tokio::test]
async fn logout_revokes_exactly_the_presented_token() {
    let layer = layer();
    let revoker = layer.revoker();
    let app = app(&layer);
    let issuer = TokenIssuer::hs256(SECRET).unwrap();
    let first = issuer.issue("alice").unwrap();
    let second = issuer.issue("alice").unwrap();
    let info = info_of(&layer, first.as_str()).await;
    assert_eq!(info.jti(), first.jti());

    revoker.revoke(&info).await.unwrap();

    let seen = send(&app, bearer(first.as_str())).await;
    assert_invalid_token(&seen, RejectionKind::RevokedToken);
    assert_eq!(
        seen.www_authenticate.as_deref(),
        Some("Bearer error=\"invalid_token\", error_description=\"the token has been revoked\"")
    );
    // The user's other session is untouched, and so is the cookie form of the same user.
    assert_eq!(
        send(&app, bearer(second.as_str())).await.status,
        StatusCode::OK
    );
    // The revoked token is refused from the cookie too.
    let seen = send(&app, with_cookie("GET", first.as_str())).await;
    assert_eq!(seen.kind(), Some(RejectionKind::RevokedToken));
}

#[tokio::test]
async fn logout_everywhere_revokes_every_token_of_the_subject_only() {
    let layer = layer();
    let revoker = layer.revoker();
    let app = app(&layer);
    let issuer = TokenIssuer::hs256(SECRET).unwrap();
    let a1 = issuer.issue("alice").unwrap();
    let a2 = issuer.issue("alice").unwrap();
    let b = issuer.issue("bob").unwrap();
    let foreign = hs256(&claims("alice")); // a whole-second token from another minter

    revoker
        .revoke_all(&info_of(&layer, a1.as_str()).await)
        .await
        .unwrap();

    for t in [a1.as_str(), a2.as_str(), foreign.as_str()] {
        assert_eq!(
            send(&app, bearer(t)).await.kind(),
            Some(RejectionKind::RevokedToken)
        );
    }
    assert_eq!(send(&app, bearer(b.as_str())).await.status, StatusCode::OK);
    // Logging in again after the logout-everywhere works, at once.
    let fresh = issuer.issue("alice").unwrap();
    assert_eq!(
        send(&app, bearer(fresh.as_str())).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn same_second_tokens_are_ordered_exactly_when_the_crate_issued_them() {
    let layer = layer();
    let revoker = layer.revoker();
    let app = app(&layer);
    let issuer = TokenIssuer::hs256(SECRET).unwrap();
    // Find a moment with enough of the second left for issue, logout-all, issue.
    loop {
        let before = issuer.issue("carol").unwrap();
        let info = info_of(&layer, before.as_str()).await;
        revoker.revoke_all(&info).await.unwrap();
        let after = issuer.issue("carol").unwrap();
        let b = info_of_or_refused(&layer, before.as_str()).await;
        if before.issued_at_micros() / 1_000_000 != after.issued_at_micros() / 1_000_000 {
            continue; // straddled a second boundary: try again
        }
        // Same second: before is refused, after is accepted.
        assert!(before.issued_at_micros() < after.issued_at_micros());
        assert_eq!(b, Some(RejectionKind::RevokedToken));
        assert_eq!(
            send(&app, bearer(after.as_str())).await.status,
            StatusCode::OK
        );
        break;
    }
}

async fn info_of_or_refused(
    layer: &JwtAuthLayer<MemoryStore>,
    token: &str,
) -> Option<RejectionKind> {
    send(&app(layer), bearer(token)).await.kind()
}

#[tokio::test]
async fn same_millisecond_login_after_logout_everywhere_is_accepted() {
    // No sleep between the two: the strictly increasing clock orders them even when the
    // wall clock has not moved a microsecond.
    let layer = layer();
    let revoker = layer.revoker();
    let issuer = TokenIssuer::hs256(SECRET).unwrap();
    let app = app(&layer);
    for _ in 0..200 {
        let sub = uid();
        let t = issuer.issue(&sub).unwrap();
        let info = info_of(&layer, t.as_str()).await;
        revoker.revoke_all(&info).await.unwrap();
        let again = issuer.issue(&sub).unwrap();
        assert_eq!(
            send(&app, bearer(again.as_str())).await.status,
            StatusCode::OK
        );
        assert_eq!(
            send(&app, bearer(t.as_str())).await.kind(),
            Some(RejectionKind::RevokedToken)
        );
    }
}

#[tokio::test]
async fn whole_second_tokens_in_the_cutoff_second_are_refused_later_ones_accepted() {
    let layer = layer();
    let revoker = layer.revoker();
    let app = app(&layer);
    let (sub, cutoff_second) = loop {
        let sub = uid();
        let info = info_of(&layer, &hs256(&claims(&sub))).await;
        let second = now();
        revoker.revoke_all(&info).await.unwrap();
        // The cutoff is stamped at or after `second`; retry if it straddled a boundary.
        if now() == second {
            break (sub, second);
        }
    };
    let mint = |iat: u64| hs256(&json!({"sub": sub, "iat": iat, "exp": iat + 600, "jti": uid()}));
    // Minted after the logout but stamped with the cutoff's whole second: it may have been
    // issued before the cutoff, so it is conservatively refused.
    assert_eq!(
        send(&app, bearer(&mint(cutoff_second))).await.kind(),
        Some(RejectionKind::RevokedToken)
    );
    // A token whose iat is the next second is accepted; an earlier one refused.
    assert_eq!(
        send(&app, bearer(&mint(cutoff_second + 1))).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, bearer(&mint(cutoff_second - 1))).await.kind(),
        Some(RejectionKind::RevokedToken)
    );
}

#[tokio::test]
async fn a_revocation_outlives_the_token_by_the_leeway_then_goes() {
    // Leeway 1 s, token valid for ~1 more second: the denylist entry must survive until
    // exp + leeway and be gone right after.
    let store = MemoryStore::new();
    let layer = JwtAuthLayer::builder(store.clone())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .leeway(Duration::from_secs(1))
        .build()
        .unwrap();
    let now = now();
    let token = hs256(&json!({"sub": "eve", "iat": now, "exp": now + 1, "jti": uid()}));
    let info = info_of(&layer, &token).await;
    layer.revoker().revoke(&info).await.unwrap();
    assert_eq!(store.len().0, 1);
    // While the token could still pass verification (now <= exp + leeway), it is refused
    // as revoked, not merely expired.
    while support::clock::now() <= now + 2 {
        let kind = send(&app(&layer), bearer(&token)).await.kind();
        if support::clock::now() <= now + 2 {
            assert_eq!(kind, Some(RejectionKind::RevokedToken));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Afterwards the token is refused as expired, and the entry is gone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        send(&app(&layer), bearer(&token)).await.kind(),
        Some(RejectionKind::ExpiredToken)
    );
    assert_eq!(
        store.len().0,
        0,
        "the denylist entry was kept past exp + leeway"
    );
}

#[tokio::test]
async fn revoking_an_already_dead_token_stores_nothing() {
    let store = MemoryStore::new();
    let layer = JwtAuthLayer::builder(store.clone())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .build()
        .unwrap();
    let info = TokenInfo::new(None, "x", "old", now() - 10_000, now() - 5_000);
    layer.revoker().revoke(&info).await.unwrap();
    assert!(store.is_empty());
}

#[tokio::test]
async fn revocation_is_per_issuer() {
    // Two issuers may reuse a jti: revoking one issuer's token leaves the other's alone.
    let layer = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .issuer("https://a.example")
        .issuer("https://b.example")
        .build()
        .unwrap();
    let app = app(&layer);
    let jti = uid();
    let token = |iss: &str| {
        let mut c = claims("same");
        c["iss"] = json!(iss);
        c["jti"] = json!(jti);
        hs256(&c)
    };
    let a = token("https://a.example");
    let b = token("https://b.example");
    layer
        .revoker()
        .revoke(&info_of(&layer, &a).await)
        .await
        .unwrap();
    assert_eq!(
        send(&app, bearer(&a)).await.kind(),
        Some(RejectionKind::RevokedToken)
    );
    assert_eq!(send(&app, bearer(&b)).await.status, StatusCode::OK);
    // And logout-everywhere of "same" at issuer a leaves issuer b's "same" alone.
    layer
        .revoker()
        .revoke_subject(Some("https://a.example"), "same")
        .await
        .unwrap();
    assert_eq!(send(&app, bearer(&b)).await.status, StatusCode::OK);
}
