//! Extractors whose rejections are JSON errors: request bodies and admin authentication.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::AppState;

/// `Json<T>` with JSON errors: 400 for syntax, types and unknown fields, 413 for oversize, 415 without the
/// `application/json` content type.
#[derive(Debug)]
pub(super) struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", one_line(&e.body_text()))
        }
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", "request body is not valid JSON")
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "request body is too large")
        }
        _ => ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", "request body could not be read"),
    }
}

fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("invalid request body");
    line.chars().take(300).collect()
}

/// An authenticated administrator: the audit actor name (`admin:<token id>`).
#[derive(Debug)]
pub(super) struct Admin(pub(super) String);

impl<S: Send + Sync> FromRequestParts<S> for Admin
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "admin token required"));
        };
        if token.len() > 256 {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "admin token required"));
        }
        let token = zeroize::Zeroizing::new(token.trim().to_owned());
        let authority = state.authority.clone();
        let actor = tokio::task::spawn_blocking(move || authority.check_admin(&token))
            .await
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error"))??;
        Ok(Admin(actor))
    }
}
