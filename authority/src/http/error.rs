//! Every error answer is JSON `{"error": {"code", "message"}}` with a stable code. Internal failures are logged
//! (without secrets) and answered with a generic message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use smqtt_authority_api::{ErrorBody, ErrorDetail};

use crate::error::Error;

/// An error on its way to becoming an HTTP answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An answer with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }

    /// Its status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        use StatusCode as S;
        let (status, code) = match &error {
            Error::Invalid { .. } => (S::BAD_REQUEST, "invalid_request"),
            Error::NotFound(_) => (S::NOT_FOUND, "not_found"),
            Error::Conflict(_) => (S::CONFLICT, "conflict"),
            Error::Unauthorized(_) => (S::UNAUTHORIZED, "unauthorized"),
            Error::TokenInvalid => (S::UNAUTHORIZED, "invalid_token"),
            Error::Stale => (S::UNAUTHORIZED, "stale_request"),
            Error::Replay => (S::UNAUTHORIZED, "replayed_request"),
            Error::Revoked => (S::FORBIDDEN, "device_revoked"),
            Error::NotEnrolled => (S::FORBIDDEN, "device_not_enrolled"),
            _ => {
                tracing::error!(%error, "internal error");
                return ApiError::new(S::INTERNAL_SERVER_ERROR, "internal", "internal error; see the authority's log");
            }
        };
        ApiError::new(status, code, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_owned(), message: self.message } };
        (self.status, Json(body)).into_response()
    }
}
