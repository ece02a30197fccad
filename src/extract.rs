//! axum extractors (feature `axum`).

use std::any::type_name;
use std::fmt;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::auth::Anonymous;
use crate::rejection::reasons;
use crate::{Claims, TokenInfo};

/// The rejection of the [`Claims`] and [`TokenInfo`] extractors.
///
/// - On an anonymous request that an [optional](crate::JwtAuthLayerBuilder::optional)
///   layer let through, a handler that requires the claims answers as the layer would
///   have: 401 with `WWW-Authenticate: Bearer`.
/// - With no [`JwtAuthLayer`](crate::JwtAuthLayer) on the route (or one with another
///   claims type), it answers 500: a bug in the application, not the client's fault;
///   the message names the layer.
#[derive(Debug)]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub struct ClaimsRejection {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    NoToken,
    MissingLayer(&'static str),
}

impl ClaimsRejection {
    /// `true` when the request was anonymous (it passed an optional layer without a
    /// token); `false` when the layer is missing from the route.
    pub fn is_anonymous(&self) -> bool {
        matches!(self.kind, Kind::NoToken)
    }

    /// The status of the response: 401 for an anonymous request, 500 for a missing
    /// layer.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            Kind::NoToken => StatusCode::UNAUTHORIZED,
            Kind::MissingLayer(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for ClaimsRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::NoToken => f.write_str(reasons::MISSING.description()),
            Kind::MissingLayer(what) => write!(
                f,
                "no `{what}` in the request extensions: is `tower_jwt_auth::JwtAuthLayer` \
                 applied to this route (with `.route_layer(..)`), with the same claims type?"
            ),
        }
    }
}

impl std::error::Error for ClaimsRejection {}

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        match self.kind {
            Kind::NoToken => {
                reasons::MISSING.trace();
                let mut response = reasons::MISSING.to_response::<axum_core::body::Body>();
                response.extensions_mut().insert(reasons::MISSING);
                response
            }
            Kind::MissingLayer(_) => (self.status(), self.to_string()).into_response(),
        }
    }
}

fn get<T: Clone + Send + Sync + 'static>(parts: &Parts) -> Result<Option<T>, ClaimsRejection> {
    match parts.extensions.get::<T>() {
        Some(value) => Ok(Some(value.clone())),
        None if parts.extensions.get::<Anonymous>().is_some() => Ok(None),
        None => Err(ClaimsRejection {
            kind: Kind::MissingLayer(type_name::<T>()),
        }),
    }
}

fn required<T: Clone + Send + Sync + 'static>(parts: &Parts) -> Result<T, ClaimsRejection> {
    get::<T>(parts)?.ok_or(ClaimsRejection {
        kind: Kind::NoToken,
    })
}

#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S, C> FromRequestParts<S> for Claims<C>
where
    S: Send + Sync,
    C: Clone + Send + Sync + 'static,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        required(parts)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S, C> OptionalFromRequestParts<S> for Claims<C>
where
    S: Send + Sync,
    C: Clone + Send + Sync + 'static,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        get(parts)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> FromRequestParts<S> for TokenInfo {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        required(parts)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> OptionalFromRequestParts<S> for TokenInfo {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        get(parts)
    }
}
