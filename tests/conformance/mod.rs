//! The store conformance suite, written once and run against every store.
//!
//! A test file uses it with
//! `mod conformance; conformance::suite!(path::to::async_fn_making_a_fresh_store);`.
//! Every store must pass all of it. A store must reflect its own writes at once: a check
//! right after a successful revoke on the same instance sees the revocation.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tower_jwt_auth::{
    Check, RevocationStatus, RevocationStore, RevokedSession, RevokedToken, SubjectCutoff,
    TokenInfo,
};

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// A unique id, so suites sharing one backend (one Redis) never see each other's data.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        now_micros(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn status<R: RevocationStore>(store: &R, token: &TokenInfo) -> RevocationStatus {
    match store.check(token) {
        Check::Ready(result) => result.expect("check failed"),
        Check::Pending(fut) => fut.await.expect("check failed"),
    }
}

pub fn token(issuer: Option<&str>, subject: &str, jti: &str) -> TokenInfo {
    let now = now_secs();
    TokenInfo::new(issuer, subject, jti, now, now + 600)
}

pub async fn revoke<R: RevocationStore>(store: &R, t: &TokenInfo, keep_until: u64) {
    store
        .revoke(&RevokedToken::for_token(t, keep_until))
        .await
        .expect("revoke failed");
}

pub async fn cutoff<R: RevocationStore>(
    store: &R,
    issuer: Option<&str>,
    subject: &str,
    at: u64,
    keep_until: u64,
) {
    store
        .revoke_subject(&SubjectCutoff::new(issuer, subject, at, keep_until))
        .await
        .expect("revoke_subject failed");
}

use RevocationStatus::{Active, Revoked};

pub async fn unknown_token_is_active<R: RevocationStore>(store: R) {
    let t = token(Some("iss"), &unique("sub"), &unique("jti"));
    assert_eq!(status(&store, &t).await, Active);
}

pub async fn revoked_token_is_revoked_and_only_it<R: RevocationStore>(store: R) {
    let sub = unique("sub");
    let t = token(Some("iss"), &sub, &unique("jti"));
    let other = token(Some("iss"), &sub, &unique("jti"));
    revoke(&store, &t, now_secs() + 600).await;
    assert_eq!(status(&store, &t).await, Revoked);
    assert_eq!(
        status(&store, &other).await,
        Active,
        "another jti of the same subject"
    );
    // Idempotent.
    revoke(&store, &t, now_secs() + 600).await;
    assert_eq!(status(&store, &t).await, Revoked);
}

pub async fn jti_is_scoped_by_issuer<R: RevocationStore>(store: R) {
    let jti = unique("jti");
    let a = token(Some("https://a.example"), "s", &jti);
    let b = token(Some("https://b.example"), "s", &jti);
    let none = token(None, "s", &jti);
    let empty = token(Some(""), "s", &jti);
    revoke(&store, &a, now_secs() + 600).await;
    assert_eq!(status(&store, &a).await, Revoked);
    assert_eq!(status(&store, &b).await, Active);
    assert_eq!(status(&store, &none).await, Active);
    assert_eq!(status(&store, &empty).await, Active);
    revoke(&store, &none, now_secs() + 600).await;
    assert_eq!(status(&store, &none).await, Revoked);
    assert_eq!(
        status(&store, &empty).await,
        Active,
        "no issuer is not the empty issuer"
    );
    assert_eq!(status(&store, &b).await, Active);
}

pub async fn already_expired_revocation_is_not_kept<R: RevocationStore>(store: R) {
    let t = token(Some("iss"), "s", &unique("jti"));
    revoke(&store, &t, now_secs().saturating_sub(1)).await;
    assert_eq!(status(&store, &t).await, Active);
}

/// Kept until `keep_until`, gone right after: not longer, not shorter.
pub async fn revocation_expires_at_keep_until<R: RevocationStore>(store: R) {
    let t = token(Some("iss"), "s", &unique("jti"));
    let keep_until = now_secs() + 2;
    revoke(&store, &t, keep_until).await;
    // Still there until just before keep_until.
    while now_micros() + 300_000 < keep_until * 1_000_000 {
        assert_eq!(
            status(&store, &t).await,
            Revoked,
            "evicted before keep_until"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Gone shortly after.
    let deadline = keep_until * 1_000_000 + 1_500_000;
    tokio::time::sleep(Duration::from_micros(
        (keep_until * 1_000_000 + 200_000).saturating_sub(now_micros()),
    ))
    .await;
    loop {
        if status(&store, &t).await == Active {
            break;
        }
        assert!(now_micros() < deadline, "kept longer than keep_until");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn cutoff_revokes_tokens_issued_up_to_it<R: RevocationStore>(store: R) {
    let sub = unique("sub");
    let at = now_micros();
    cutoff(&store, Some("iss"), &sub, at, now_secs() + 600).await;
    let exp = now_secs() + 600;
    let before = TokenInfo::with_micros(Some("iss"), &sub, &unique("j"), at - 1, exp);
    let same = TokenInfo::with_micros(Some("iss"), &sub, &unique("j"), at, exp);
    let after = TokenInfo::with_micros(Some("iss"), &sub, &unique("j"), at + 1, exp);
    assert_eq!(status(&store, &before).await, Revoked);
    assert_eq!(
        status(&store, &same).await,
        Revoked,
        "a tie counts as before"
    );
    assert_eq!(status(&store, &after).await, Active);
    // Other subjects and issuers are untouched.
    let other_sub = TokenInfo::with_micros(Some("iss"), &unique("sub"), "j", at - 1, exp);
    let other_iss = TokenInfo::with_micros(Some("other"), &sub, "j", at - 1, exp);
    assert_eq!(status(&store, &other_sub).await, Active);
    assert_eq!(status(&store, &other_iss).await, Active);
}

/// Whole-second tokens are judged conservatively: same second as the cutoff = revoked.
pub async fn whole_second_tokens_are_judged_conservatively<R: RevocationStore>(store: R) {
    let sub = unique("sub");
    // A cutoff in the middle of a second.
    let second = now_secs();
    let at = second * 1_000_000 + 500_000;
    cutoff(&store, None, &sub, at, second + 600).await;
    let exp = second + 600;
    let same_second = TokenInfo::new(None, &sub, &unique("j"), second, exp);
    let earlier = TokenInfo::new(None, &sub, &unique("j"), second - 1, exp);
    let next_second = TokenInfo::new(None, &sub, &unique("j"), second + 1, exp);
    assert_eq!(status(&store, &same_second).await, Revoked);
    assert_eq!(status(&store, &earlier).await, Revoked);
    assert_eq!(status(&store, &next_second).await, Active);
    // A precise token in the same second is ordered exactly.
    let precise_after = TokenInfo::with_micros(None, &sub, &unique("j"), at + 1, exp);
    assert_eq!(status(&store, &precise_after).await, Active);
}

pub async fn cutoff_only_moves_forward<R: RevocationStore>(store: R) {
    let sub = unique("sub");
    let later = now_micros();
    let earlier = later - 10_000_000;
    let keep = now_secs() + 600;
    cutoff(&store, Some("iss"), &sub, later, keep).await;
    cutoff(&store, Some("iss"), &sub, earlier, keep).await;
    let between = TokenInfo::with_micros(Some("iss"), &sub, "j", later - 1, now_secs() + 600);
    assert_eq!(
        status(&store, &between).await,
        Revoked,
        "an older cutoff lowered a newer one"
    );
    let after = TokenInfo::with_micros(Some("iss"), &sub, "j", later + 1, now_secs() + 600);
    assert_eq!(status(&store, &after).await, Active);
}

pub async fn concurrent_cutoffs_keep_the_latest<R: RevocationStore + Clone>(store: R) {
    let sub = unique("sub");
    let base = now_micros();
    let keep = now_secs() + 600;
    let mut tasks = Vec::new();
    // Writers race with cutoffs in scrambled order; the maximum must win.
    for i in 0..32u64 {
        let store = store.clone();
        let sub = sub.clone();
        let at = base + (i * 7919) % 32;
        tasks.push(tokio::spawn(async move {
            cutoff(&store, Some("iss"), &sub, at, keep).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let max = base + 31;
    let at_max = TokenInfo::with_micros(Some("iss"), &sub, "j", max, keep);
    let after = TokenInfo::with_micros(Some("iss"), &sub, "j", max + 1, keep);
    assert_eq!(status(&store, &at_max).await, Revoked);
    assert_eq!(status(&store, &after).await, Active);
}

pub async fn cutoff_expires_at_keep_until<R: RevocationStore>(store: R) {
    let sub = unique("sub");
    let at = now_micros();
    let keep_until = now_secs() + 2;
    cutoff(&store, None, &sub, at, keep_until).await;
    let t = TokenInfo::with_micros(None, &sub, "j", at - 1, keep_until + 600);
    assert_eq!(status(&store, &t).await, Revoked);
    tokio::time::sleep(Duration::from_micros(
        (keep_until * 1_000_000 + 300_000).saturating_sub(now_micros()),
    ))
    .await;
    let deadline = keep_until * 1_000_000 + 1_500_000;
    while status(&store, &t).await != Active {
        assert!(
            now_micros() < deadline,
            "cutoff kept longer than keep_until"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn a_later_cutoff_extends_retention<R: RevocationStore>(store: R) {
    let sub = unique("sub");
    let first = now_micros();
    cutoff(&store, None, &sub, first, now_secs() + 600).await;
    // A later cutoff with a shorter retention must not shorten the first one's.
    cutoff(&store, None, &sub, first + 1, now_secs() + 1).await;
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let t = TokenInfo::with_micros(None, &sub, "j", first, now_secs() + 600);
    assert_eq!(status(&store, &t).await, Revoked);
}

pub async fn end_session<R: RevocationStore>(
    store: &R,
    issuer: Option<&str>,
    sid: &str,
    keep_until: u64,
) {
    store
        .revoke_session(&RevokedSession::new(issuer, sid, now_micros(), keep_until))
        .await
        .expect("revoke_session failed");
}

/// An ended session refuses every token carrying its `sid` (from the same issuer),
/// issued before or after its end, and nothing else.
pub async fn ended_session_revokes_its_tokens_and_only_them<R: RevocationStore>(store: R) {
    let sid = unique("sid");
    let sub = unique("sub");
    let before = token(Some("iss"), &sub, "a").with_session(&sid);
    end_session(&store, Some("iss"), &sid, now_secs() + 600).await;
    let after = token(Some("iss"), &sub, "b").with_session(&sid);
    assert_eq!(status(&store, &before).await, Revoked);
    assert_eq!(status(&store, &after).await, Revoked);
    let other_session = token(Some("iss"), &sub, "c").with_session(&unique("sid"));
    let no_session = token(Some("iss"), &sub, "d");
    let other_issuer = token(Some("other"), &sub, "e").with_session(&sid);
    let no_issuer = token(None, &sub, "f").with_session(&sid);
    for t in [&other_session, &no_session, &other_issuer, &no_issuer] {
        assert_eq!(status(&store, t).await, Active, "{:?}", t.session_id());
    }
}

/// An ended session is kept until its keep_until, and gone right after.
pub async fn ended_session_expires_at_keep_until<R: RevocationStore>(store: R) {
    let sid = unique("sid");
    let keep_until = now_secs() + 2;
    end_session(&store, None, &sid, keep_until).await;
    let t = token(None, "s", "j").with_session(&sid);
    assert_eq!(status(&store, &t).await, Revoked);
    tokio::time::sleep(Duration::from_micros(
        (keep_until * 1_000_000 + 300_000).saturating_sub(now_micros()),
    ))
    .await;
    let deadline = keep_until * 1_000_000 + 1_500_000;
    while status(&store, &t).await == Revoked {
        assert!(
            now_micros() < deadline,
            "session kept longer than keep_until"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Expands to one `#[tokio::test]` per case, each with a fresh store from `$make`.
#[macro_export]
macro_rules! suite {
    ($make:path) => {
        $crate::suite!(@cases $make;
            unknown_token_is_active,
            revoked_token_is_revoked_and_only_it,
            jti_is_scoped_by_issuer,
            already_expired_revocation_is_not_kept,
            revocation_expires_at_keep_until,
            cutoff_revokes_tokens_issued_up_to_it,
            whole_second_tokens_are_judged_conservatively,
            cutoff_only_moves_forward,
            concurrent_cutoffs_keep_the_latest,
            cutoff_expires_at_keep_until,
            a_later_cutoff_extends_retention,
            ended_session_revokes_its_tokens_and_only_them,
            ended_session_expires_at_keep_until,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::conformance::$case($make().await).await;
            }
        )*
    };
}
pub use suite;
