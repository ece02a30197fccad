//! Counting refusals by reason with the [`metrics`] facade: a response mapper outside
//! the layer reads the [`Rejection`] from each response's extensions and increments
//! `jwt_auth_refusals_total{code="..."}`, labelled with the stable
//! [`Rejection::code`] (`missing`, `expired`, `revoked`, ...).
//!
//! ```text
//! cargo run --example metrics
//! ```
//!
//! This demo sends a few requests in process and prints the counters from a small
//! recorder of its own; a real service installs an exporter instead (for example
//! `metrics-exporter-prometheus`), and the counting stays the same.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::{Request, Response, header};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_jwt_auth::{Claims, JwtAuthLayer, MemoryStore, Rejection, TokenIssuer, VerificationKey};

/// The counter of refused requests, labelled `code`.
pub const REFUSALS: &str = "jwt_auth_refusals_total";

/// Counts `response` in [`REFUSALS`] when the layer refused the request. Use it with
/// `ServiceBuilder::map_response` outside the layer, so it sees the layer's answers. The
/// label is a `&'static str`, and accepted requests cost one extensions lookup.
pub fn count_refusal<B>(response: Response<B>) -> Response<B> {
    if let Some(rejection) = response.extensions().get::<Rejection>() {
        metrics::counter!(REFUSALS, "code" => rejection.code()).increment(1);
    }
    response
}

/// A recorder that keeps counters in memory, to print them; only counters are kept.
#[derive(Debug, Default)]
pub struct InMemory {
    counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

impl InMemory {
    /// `(name{label="value",..}, count)` for every counter, sorted.
    pub fn counters(&self) -> Vec<(String, u64)> {
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        counters
            .iter()
            .map(|(key, count)| (key.clone(), count.load(Ordering::Relaxed)))
            .collect()
    }
}

impl Recorder for InMemory {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels: Vec<_> = key
            .labels()
            .map(|l| format!("{}={:?}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        Counter::from_arc(Arc::clone(counters.entry(name).or_default()))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let recorder: &'static InMemory = Box::leak(Box::default());
    metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;

    let secret = b"an example secret of at least 32 bytes!";
    let issuer = TokenIssuer::hs256(secret)?;
    let auth = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(secret)?)
        .build()?;
    let revoker = auth.revoker();
    let app = ServiceBuilder::new()
        // Outside the layer: it sees every refusal.
        .map_response(count_refusal)
        .layer(auth)
        .service(service_fn(|req: Request<String>| async move {
            let claims = req.extensions().get::<Claims>().expect("set by the layer");
            Ok::<_, Infallible>(Response::new(format!("hello {}", claims.subject())))
        }));
    let request = |authorization: Option<&str>| {
        let mut request = Request::get("/me");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        request.body(String::new())
    };

    let token = issuer.issue("alice")?;
    let bearer = format!("Bearer {}", token.as_str());
    app.clone().oneshot(request(Some(&bearer))?).await?;
    app.clone().oneshot(request(None)?).await?;
    app.clone()
        .oneshot(request(Some("Bearer not-a-jwt"))?)
        .await?;
    revoker.revoke_token(token.as_str()).await?;
    app.clone().oneshot(request(Some(&bearer))?).await?;

    for (counter, count) in recorder.counters() {
        println!("{counter} {count}");
    }
    Ok(())
}
