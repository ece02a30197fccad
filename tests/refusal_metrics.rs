//! `examples/metrics.rs` (included below): the refusal counter outside the layer counts
//! each refusal under its reason code, gRPC calls included, and accepted requests not
//! at all. The counts are read back from a recorder written here, not the example's.

mod support;

#[path = "../examples/metrics.rs"]
#[allow(dead_code, unreachable_pub)]
mod example;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::{HeaderValue, Request, Response, StatusCode, header};
use jsonwebtoken::{Algorithm, Header};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use support::clock::now;
use support::service::{bearer, layer};
use support::tokens::{OTHER_SECRET, claims, hs256, sign};
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// A counter's name and labels.
type CounterKey = (String, Vec<(String, String)>);

/// Counters by name and labels.
#[derive(Default)]
struct Counts(Mutex<BTreeMap<CounterKey, Arc<AtomicU64>>>);

impl Counts {
    fn get(&self) -> BTreeMap<String, u64> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|((name, labels), count)| {
                assert_eq!(name, example::REFUSALS);
                assert_eq!(labels.len(), 1, "{labels:?}");
                assert_eq!(labels[0].0, "code");
                (labels[0].1.clone(), count.load(Ordering::Relaxed))
            })
            .collect()
    }
}

impl Recorder for Counts {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        let mut counts = self.0.lock().unwrap();
        let count = counts.entry((key.name().to_owned(), labels)).or_default();
        Counter::from_arc(Arc::clone(count))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        unreachable!("the example records counters only")
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        unreachable!("the example records counters only")
    }
}

// One test: the recorder is global to this binary.
#[tokio::test]
async fn refusals_are_counted_by_reason_code() {
    let counts: &'static Counts = Box::leak(Box::default());
    metrics::set_global_recorder(counts).unwrap();

    let layer = layer();
    let app = ServiceBuilder::new()
        .map_response(example::count_refusal)
        .layer(layer.clone())
        .service(service_fn(|_: Request<String>| async {
            Ok::<_, std::convert::Infallible>(Response::new(String::new()))
        }));
    let send = |request: Request<String>| {
        let app = app.clone();
        async move { app.oneshot(request).await.unwrap().status() }
    };

    let good = hs256(&claims("alice"));
    let expired = {
        let mut c = claims("alice");
        c["iat"] = (now() - 7200).into();
        c["exp"] = (now() - 3600).into();
        hs256(&c)
    };
    let revoked = hs256(&claims("bob"));
    layer.revoker().revoke_token(&revoked).await.unwrap();
    let mut grpc = Request::new(String::new());
    grpc.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );

    assert_eq!(send(bearer(&good)).await, StatusCode::OK);
    assert_eq!(send(bearer(&good)).await, StatusCode::OK);
    assert_eq!(
        send(Request::new(String::new())).await,
        StatusCode::UNAUTHORIZED
    );
    // A gRPC call is answered 200 with a grpc-status, and counted all the same.
    assert_eq!(send(grpc).await, StatusCode::OK);
    let other_key = sign(
        &Header::new(Algorithm::HS256),
        &claims("alice"),
        OTHER_SECRET,
    );
    send(bearer(&other_key)).await;
    send(bearer(&expired)).await;
    send(bearer(&revoked)).await;
    send(bearer(&revoked)).await;
    send(bearer("not-a-jwt")).await;

    let expected: BTreeMap<String, u64> = [
        ("bad_signature", 1),
        ("expired", 1),
        ("malformed", 1),
        ("missing", 2),
        ("revoked", 2),
    ]
    .into_iter()
    .map(|(code, n)| (code.to_owned(), n))
    .collect();
    assert_eq!(counts.get(), expected);
}
