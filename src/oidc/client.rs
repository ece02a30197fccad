//! Fetching a provider's documents: the pluggable [`HttpClient`], the built-in
//! [`HyperClient`], and the limits every fetch obeys whatever the client.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Uri, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty};

/// An error from an [`HttpClient`].
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// The body of a response an [`HttpClient`] returns.
pub type HttpBody = UnsyncBoxBody<Bytes, BoxError>;

/// What an [`HttpClient`] returns: the response, its body still to be read (the crate
/// reads it with its own size limit and deadline).
pub type HttpFuture = Pin<Box<dyn Future<Output = Result<Response<HttpBody>, BoxError>> + Send>>;

/// Sends the `GET` requests that fetch a provider's discovery document and key set.
///
/// The crate applies its own limits on top of any client: a deadline for the whole
/// fetch, a size limit on the body, only `200 OK` accepted (so a redirect is a failed
/// fetch, never followed by the crate). A client must not follow redirects either.
/// Plug your own (your HTTPS stack, a proxy, your CA roots) by implementing this;
/// [`HyperClient`] is the built-in one.
pub trait HttpClient: Send + Sync + 'static {
    /// Sends `request` (a `GET` with an empty body and an `Accept` header).
    fn get(&self, request: Request<()>) -> HttpFuture;
}

/// The built-in [`HttpClient`]: hyper-util's client over HTTP/1.1, with a connect
/// timeout, no redirects followed and no proxy. It speaks `https://` with feature
/// `oidc-rustls` (rustls on aws-lc-rs, the Mozilla root certificates) and plain
/// `http://` always (a provider on a private network, tests).
#[derive(Clone)]
pub struct HyperClient {
    #[cfg(feature = "oidc-rustls")]
    client: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Empty<Bytes>,
    >,
    #[cfg(not(feature = "oidc-rustls"))]
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Empty<Bytes>,
    >,
}

impl fmt::Debug for HyperClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperClient")
            .field("https", &cfg!(feature = "oidc-rustls"))
            .finish_non_exhaustive()
    }
}

/// The default connect timeout of [`HyperClient`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

impl HyperClient {
    /// A client whose connections time out after `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Self {
        use hyper_util::client::legacy::{Client, connect::HttpConnector};
        use hyper_util::rt::TokioExecutor;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        #[cfg(feature = "oidc-rustls")]
        let connector = {
            http.enforce_http(false);
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_webpki_roots()
                .https_or_http()
                .enable_http1()
                .wrap_connector(http)
        };
        #[cfg(not(feature = "oidc-rustls"))]
        let connector = http;
        Self {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(1)
                .build(connector),
        }
    }
}

impl Default for HyperClient {
    fn default() -> Self {
        Self::new(DEFAULT_CONNECT_TIMEOUT)
    }
}

impl HttpClient for HyperClient {
    fn get(&self, request: Request<()>) -> HttpFuture {
        let (parts, ()) = request.into_parts();
        let request = Request::from_parts(parts, Empty::new());
        let response = self.client.request(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| body.map_err(|e| Box::new(e) as BoxError).boxed_unsync()))
        })
    }
}

/// Why a fetch failed; never contains the body (a provider's documents are public, but
/// an error page may not be).
#[derive(Debug)]
pub(crate) enum FetchError {
    /// The client failed (connection refused, reset, TLS).
    Client(BoxError),
    /// The deadline passed.
    Timeout,
    /// Not `200 OK` (a redirect included).
    Status(StatusCode),
    /// The body is over the limit.
    TooLarge,
    /// The body could not be read.
    Body(BoxError),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Client(e) => write!(f, "the request failed: {e}"),
            Self::Timeout => f.write_str("no complete answer within the fetch timeout"),
            Self::Status(s) => write!(f, "answered {s} (only 200 is accepted)"),
            Self::TooLarge => f.write_str("the body is over the size limit"),
            Self::Body(e) => write!(f, "the body could not be read: {e}"),
        }
    }
}

/// A fetched document: its body and the headers (for `Cache-Control`).
pub(crate) struct Fetched {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// `GET url` through `client`, all of it (connection, headers, body) within `timeout`,
/// the body at most `max_len` bytes.
pub(crate) async fn fetch(
    client: &dyn HttpClient,
    url: &Uri,
    timeout: Duration,
    max_len: usize,
) -> Result<Fetched, FetchError> {
    let request = Request::get(url.clone())
        .header(header::ACCEPT, "application/json")
        .body(())
        .map_err(|e| FetchError::Client(Box::new(e)))?;
    let work = async {
        let response = client
            .get(request)
            .await
            .map_err(|e: BoxError| FetchError::Client(e))?;
        if response.status() != StatusCode::OK {
            return Err(FetchError::Status(response.status()));
        }
        let declared = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max_len as u64) {
            return Err(FetchError::TooLarge);
        }
        let (parts, mut body) = response.into_parts();
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(FetchError::Body)?;
            if let Ok(data) = frame.into_data() {
                if bytes.len() + data.len() > max_len {
                    return Err(FetchError::TooLarge);
                }
                bytes.extend_from_slice(&data);
            }
        }
        let body = Bytes::from(bytes);
        Ok(Fetched {
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or(Err(FetchError::Timeout))
}

/// `Cache-Control: max-age` of a response, if it has one (and no `no-store`/`no-cache`,
/// which say "fetch again soon", taken as a max-age of 0).
pub(crate) fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut age = None;
    for value in headers.get_all(header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            if directive.eq_ignore_ascii_case("no-store")
                || directive.eq_ignore_ascii_case("no-cache")
            {
                return Some(Duration::ZERO);
            }
            if let Some((name, secs)) = directive.split_once('=')
                && name.trim().eq_ignore_ascii_case("max-age")
                && let Ok(secs) = secs.trim().trim_matches('"').parse::<u64>()
            {
                age = Some(Duration::from_secs(secs));
            }
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn max_age_is_read_from_cache_control() {
        let mut h = HeaderMap::new();
        assert_eq!(max_age(&h), None);
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
        assert_eq!(max_age(&h), Some(Duration::from_secs(3600)));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("Max-Age = \"60\""),
        );
        assert_eq!(max_age(&h), Some(Duration::from_secs(60)));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=-1"),
        );
        assert_eq!(max_age(&h), None);
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, max-age=600"),
        );
        assert_eq!(max_age(&h), Some(Duration::ZERO));
    }
}
