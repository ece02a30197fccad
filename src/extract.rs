//! axum extractors (feature `axum`).

use std::any::type_name;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::service::Anonymous;
use crate::{Claims, TokenInfo};

/// The rejection of the [`Claims`] and [`TokenInfo`] extractors: the value is not in the
/// request's extensions, so [`JwtAuthLayer`](crate::JwtAuthLayer) is not applied to this
/// route (or is applied with another claims type). A 500: it is a bug in the
/// application, not the client's fault.
#[derive(Debug)]
pub struct MissingAuthLayer {
    what: &'static str,
}

impl std::fmt::Display for MissingAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no `{}` in the request extensions: is `tower_jwt_auth::JwtAuthLayer` applied to \
             this route (with `.route_layer(..)`), with the same claims type?",
            self.what
        )
    }
}

impl std::error::Error for MissingAuthLayer {}

impl IntoResponse for MissingAuthLayer {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

fn get<T: Clone + Send + Sync + 'static>(parts: &Parts) -> Result<Option<T>, MissingAuthLayer> {
    match parts.extensions.get::<T>() {
        Some(value) => Ok(Some(value.clone())),
        None if parts.extensions.get::<Anonymous>().is_some() => Ok(None),
        None => Err(MissingAuthLayer {
            what: type_name::<T>(),
        }),
    }
}

fn required<T: Clone + Send + Sync + 'static>(parts: &Parts) -> Result<T, MissingAuthLayer> {
    get::<T>(parts)?.ok_or(MissingAuthLayer {
        what: type_name::<T>(),
    })
}

impl<S, C> FromRequestParts<S> for Claims<C>
where
    S: Send + Sync,
    C: Clone + Send + Sync + 'static,
{
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        required(parts)
    }
}

impl<S, C> OptionalFromRequestParts<S> for Claims<C>
where
    S: Send + Sync,
    C: Clone + Send + Sync + 'static,
{
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        get(parts)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for TokenInfo {
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        required(parts)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for TokenInfo {
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        get(parts)
    }
}
