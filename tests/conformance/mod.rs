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

// ---- Refresh tokens (SessionStore) ----

use tower_jwt_auth::{RefreshHash, RefreshRecord, RotateOutcome, Rotation, SessionStore};

/// A fresh refresh token's hash (the token itself never reaches a store).
pub fn refresh_hash() -> RefreshHash {
    RefreshHash::of(&unique("refresh-token"))
}

/// Records the first refresh token `hash` of a new session of `subject`, started now,
/// with a token and session lifetime of 600 s; returns the sid.
pub async fn create<S: SessionStore>(store: &S, subject: &str, hash: &RefreshHash) -> String {
    create_with(
        store,
        subject,
        hash,
        now_micros(),
        now_secs() + 600,
        now_secs() + 600,
    )
    .await
}

pub async fn create_with<S: SessionStore>(
    store: &S,
    subject: &str,
    hash: &RefreshHash,
    started: u64,
    deadline: u64,
    expires_at: u64,
) -> String {
    let sid = unique("sid");
    store
        .create_refresh(&RefreshRecord::new(
            Some("iss"),
            subject,
            &sid,
            hash,
            started,
            deadline,
            expires_at,
        ))
        .await
        .expect("create_refresh failed");
    sid
}

pub async fn rotate<S: SessionStore>(
    store: &S,
    presented: &RefreshHash,
    new: &RefreshHash,
    interval: Duration,
) -> RotateOutcome {
    store
        .rotate_refresh(&Rotation::new(
            presented,
            new,
            now_micros() / 1000,
            now_secs() + 600,
            interval,
        ))
        .await
        .expect("rotate_refresh failed")
}

fn rotated(outcome: &RotateOutcome, subject: &str, sid: &str) -> bool {
    matches!(outcome, RotateOutcome::Rotated { session, .. }
        if session.subject == subject && session.sid == sid && session.issuer.as_deref() == Some("iss"))
}

/// The current token rotates, again and again; each rotation names the session.
pub async fn refresh_rotates<S: SessionStore>(store: S) {
    let sub = unique("sub");
    let h: Vec<RefreshHash> = (0..4).map(|_| refresh_hash()).collect();
    let sid = create(&store, &sub, &h[0]).await;
    for w in h.windows(2) {
        let out = rotate(&store, &w[0], &w[1], Duration::ZERO).await;
        assert!(rotated(&out, &sub, &sid), "{out:?}");
    }
}

/// An unknown token is Invalid.
pub async fn unknown_refresh_is_invalid<S: SessionStore>(store: S) {
    let out = rotate(&store, &refresh_hash(), &refresh_hash(), Duration::ZERO).await;
    assert_eq!(out, RotateOutcome::Invalid);
}

/// A used token presented again ends the session: its current token dies too.
pub async fn reuse_ends_the_session<S: SessionStore>(store: S) {
    let sub = unique("sub");
    let (h0, h1, h2, h3) = (
        refresh_hash(),
        refresh_hash(),
        refresh_hash(),
        refresh_hash(),
    );
    let sid = create(&store, &sub, &h0).await;
    assert!(rotated(
        &rotate(&store, &h0, &h1, Duration::ZERO).await,
        &sub,
        &sid
    ));
    assert!(rotated(
        &rotate(&store, &h1, &h2, Duration::ZERO).await,
        &sub,
        &sid
    ));
    // The oldest token, used: reuse.
    match rotate(&store, &h0, &h3, Duration::ZERO).await {
        RotateOutcome::Reused { session } => assert_eq!(session.sid, sid),
        other => panic!("{other:?}"),
    }
    // The current one is dead, and so is every other.
    assert_eq!(
        rotate(&store, &h2, &h3, Duration::ZERO).await,
        RotateOutcome::Invalid
    );
    assert_eq!(
        rotate(&store, &h1, &h3, Duration::ZERO).await,
        RotateOutcome::Invalid
    );
}

/// With a reuse interval the previous token may be exchanged again within it (the new
/// token replaces the current one); after it, or for an older token, it is a reuse.
pub async fn reuse_interval_allows_the_previous_token<S: SessionStore>(store: S) {
    let sub = unique("sub");
    let interval = Duration::from_millis(1_500);
    let h: Vec<RefreshHash> = (0..7).map(|_| refresh_hash()).collect();
    let sid = create(&store, &sub, &h[0]).await;
    assert!(rotated(
        &rotate(&store, &h[0], &h[1], interval).await,
        &sub,
        &sid
    ));
    // The second tab: the same token again, within the interval.
    assert!(rotated(
        &rotate(&store, &h[0], &h[2], interval).await,
        &sub,
        &sid
    ));
    // h1 was superseded by h2 (never used): invalid, not a reuse.
    assert_eq!(
        rotate(&store, &h[1], &h[3], interval).await,
        RotateOutcome::Invalid
    );
    assert!(rotated(
        &rotate(&store, &h[2], &h[3], interval).await,
        &sub,
        &sid
    ));
    // h0 is no longer the previous token: a reuse, even within the interval.
    assert!(matches!(
        rotate(&store, &h[0], &h[4], interval).await,
        RotateOutcome::Reused { .. }
    ));
    // Past the interval, the previous token is a reuse too.
    let sub = unique("sub");
    let sid = create(&store, &sub, &h[4]).await;
    assert!(rotated(
        &rotate(&store, &h[4], &h[5], Duration::from_millis(200)).await,
        &sub,
        &sid
    ));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(
        rotate(&store, &h[4], &h[6], Duration::from_millis(200)).await,
        RotateOutcome::Reused { .. }
    ));
}

/// Without an interval, the token just used is a reuse at once.
pub async fn no_interval_means_any_second_exchange_is_reuse<S: SessionStore>(store: S) {
    let sub = unique("sub");
    let (h0, h1, h2) = (refresh_hash(), refresh_hash(), refresh_hash());
    let sid = create(&store, &sub, &h0).await;
    assert!(rotated(
        &rotate(&store, &h0, &h1, Duration::ZERO).await,
        &sub,
        &sid
    ));
    assert!(matches!(
        rotate(&store, &h0, &h2, Duration::ZERO).await,
        RotateOutcome::Reused { .. }
    ));
}

/// Repeating a call that succeeded (same presented and new token) answers Rotated again,
/// and is no reuse.
pub async fn a_repeated_rotation_is_idempotent<S: SessionStore>(store: S) {
    let sub = unique("sub");
    let (h0, h1, h2) = (refresh_hash(), refresh_hash(), refresh_hash());
    let sid = create(&store, &sub, &h0).await;
    assert!(rotated(
        &rotate(&store, &h0, &h1, Duration::ZERO).await,
        &sub,
        &sid
    ));
    assert!(rotated(
        &rotate(&store, &h0, &h1, Duration::ZERO).await,
        &sub,
        &sid
    ));
    assert!(rotated(
        &rotate(&store, &h1, &h2, Duration::ZERO).await,
        &sub,
        &sid
    ));
}

/// A token past its own expiry, or in a session past its deadline, is Invalid; the new
/// token's expiry is capped at the session's deadline.
pub async fn expired_refresh_is_invalid<S: SessionStore>(store: S) {
    let sub = unique("sub");
    let (h0, h1, h2, h3) = (
        refresh_hash(),
        refresh_hash(),
        refresh_hash(),
        refresh_hash(),
    );
    let n = now_secs();
    create_with(&store, &sub, &h0, now_micros(), n + 600, n + 1).await;
    let deadline = n + 2;
    create_with(&store, &sub, &h2, now_micros(), deadline, n + 600).await;
    match rotate(&store, &h2, &h3, Duration::ZERO).await {
        RotateOutcome::Rotated { expires_at, .. } => assert_eq!(expires_at, deadline),
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_micros(
        ((n + 2) * 1_000_000 + 300_000).saturating_sub(now_micros()),
    ))
    .await;
    assert_eq!(
        rotate(&store, &h0, &h1, Duration::ZERO).await,
        RotateOutcome::Invalid
    );
    assert_eq!(
        rotate(&store, &h3, &refresh_hash(), Duration::ZERO).await,
        RotateOutcome::Invalid
    );
}

/// An ended session refuses its refresh tokens, and so does a cutoff of its subject at
/// or after its start; a cutoff before its start does not.
pub async fn ended_session_or_cutoff_refuse_refresh<S: SessionStore>(store: S) {
    let refused = |o: &RotateOutcome| matches!(o, RotateOutcome::Revoked | RotateOutcome::Invalid);
    let sub = unique("sub");
    let (h0, h1) = (refresh_hash(), refresh_hash());
    let sid = create(&store, &sub, &h0).await;
    end_session(&store, Some("iss"), &sid, now_secs() + 600).await;
    let out = rotate(&store, &h0, &h1, Duration::ZERO).await;
    assert!(refused(&out), "{out:?}");

    // Another issuer's session with the same sid is another session.
    let (h2, h3) = (refresh_hash(), refresh_hash());
    let sid2 = create(&store, &sub, &h2).await;
    end_session(&store, Some("other"), &sid2, now_secs() + 600).await;
    end_session(&store, None, &sid2, now_secs() + 600).await;
    assert!(rotated(
        &rotate(&store, &h2, &h3, Duration::ZERO).await,
        &sub,
        &sid2
    ));

    // A cutoff before the session started leaves it alone.
    let sub = unique("sub");
    let before = now_micros();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (h4, h5, h6) = (refresh_hash(), refresh_hash(), refresh_hash());
    let sid = create(&store, &sub, &h4).await;
    cutoff(&store, Some("iss"), &sub, before, now_secs() + 600).await;
    assert!(rotated(
        &rotate(&store, &h4, &h5, Duration::ZERO).await,
        &sub,
        &sid
    ));
    // One at or after its start ends it; other subjects' sessions live on.
    let (o0, o1) = (refresh_hash(), refresh_hash());
    let other_sub = unique("sub");
    let other_sid = create(&store, &other_sub, &o0).await;
    cutoff(&store, Some("iss"), &sub, now_micros(), now_secs() + 600).await;
    let out = rotate(&store, &h5, &h6, Duration::ZERO).await;
    assert!(refused(&out), "{out:?}");
    assert!(rotated(
        &rotate(&store, &o0, &o1, Duration::ZERO).await,
        &other_sub,
        &other_sid
    ));
}

/// Ending a session kills its refresh tokens for good: even once the ended-session entry
/// (kept only as long as an access token could pass) has expired.
pub async fn refresh_stays_dead_after_the_end_expires<S: SessionStore>(store: S) {
    let sub = unique("sub");
    let (h0, h1) = (refresh_hash(), refresh_hash());
    let sid = create(&store, &sub, &h0).await;
    end_session(&store, Some("iss"), &sid, now_secs() + 1).await;
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let out = rotate(&store, &h0, &h1, Duration::ZERO).await;
    assert!(
        matches!(out, RotateOutcome::Revoked | RotateOutcome::Invalid),
        "{out:?}"
    );
}

/// Many simultaneous exchanges of one token: exactly one succeeds, the others are
/// reuses (which end the session) or find it ended.
pub async fn concurrent_exchanges_exactly_one_succeeds<S: SessionStore + Clone>(store: S) {
    let sub = unique("sub");
    let h0 = refresh_hash();
    create(&store, &sub, &h0).await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { rotate(&store, &h0, &refresh_hash(), Duration::ZERO).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), RotateOutcome::Rotated { .. }) {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
}

/// Expands to one `#[tokio::test]` per refresh-token case, each with a fresh store.
#[macro_export]
macro_rules! session_suite {
    ($make:path) => {
        $crate::suite!(@cases $make;
            refresh_rotates,
            unknown_refresh_is_invalid,
            reuse_ends_the_session,
            reuse_interval_allows_the_previous_token,
            no_interval_means_any_second_exchange_is_reuse,
            a_repeated_rotation_is_idempotent,
            expired_refresh_is_invalid,
            ended_session_or_cutoff_refuse_refresh,
            refresh_stays_dead_after_the_end_expires,
            concurrent_exchanges_exactly_one_succeeds,
        );
    };
}
pub use session_suite;
