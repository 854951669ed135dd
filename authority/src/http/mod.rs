//! The HTTP API: [`router`] builds it over an [`Authority`]; [`serve`] runs it on a listener.

mod conn;
mod error;
mod extract;
mod guard;
mod limiter;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use smqtt_authority_api::{
    AuditLog, AuditVerification, DeviceList, EnrollRequest, KeyRequestBody, NewDevice, RotateRequest,
};

pub use error::ApiError;
use extract::{Admin, ApiJson};
pub use guard::Metrics;
pub use limiter::RateLimiter;

use crate::service::Authority;

/// The OpenAPI 3.1 document of this API (checked against the routes by the tests).
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Shared state of the handlers.
#[derive(Clone, Debug)]
pub struct AppState {
    authority: Arc<Authority>,
    metrics: Arc<Metrics>,
    limiter: Arc<RateLimiter>,
}

impl AppState {
    /// State over `authority`, with the rate limits of its configuration.
    pub fn new(authority: Arc<Authority>) -> AppState {
        let limits = &authority.config().limits;
        let limiter =
            Arc::new(RateLimiter::with_capacity(limits.rate_per_sec, limits.rate_burst, limits.rate_tracked_clients));
        AppState { authority, metrics: Arc::new(Metrics::default()), limiter }
    }
}

/// Runs `work` on the blocking pool (database, pairings): the async workers stay free.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&Authority) -> crate::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let authority = state.authority.clone();
    match tokio::task::spawn_blocking(move || work(&authority)).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(_) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")),
    }
}

/// The whole API over `state`, with body limit, timeout, rate limit and metrics.
pub fn router(state: AppState) -> Router {
    let limits = state.authority.config().limits.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/params", get(params))
        .route("/v1/epoch", get(epoch))
        .route("/v1/epoch/rotate", post(rotate))
        .route("/v1/devices", get(list_devices).post(add_device))
        .route("/v1/devices/{id}", get(show_device))
        .route("/v1/devices/{id}/revoke", post(revoke_device))
        .route("/v1/enroll", post(enroll))
        .route("/v1/keys", post(issue_key))
        .route("/v1/audit", get(audit))
        .route("/v1/audit/verify", get(audit_verify))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), guard::rate_limit))
        .layer(middleware::from_fn_with_state(state.clone(), guard::track))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(limits.request_timeout_secs),
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this endpoint")
}

async fn healthz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let epoch = blocking(&state, |a| a.epoch()).await?;
    Ok(Json(serde_json::json!({ "status": "ok", "epoch": epoch.epoch })))
}

async fn metrics(State(state): State<AppState>) -> Response {
    let epoch = blocking(&state, |a| a.epoch()).await.ok().map(|e| e.epoch);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render(epoch)).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn params(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(blocking(&state, |a| a.params()).await?))
}

async fn epoch(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(blocking(&state, |a| a.epoch()).await?))
}

async fn rotate(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiJson(body): ApiJson<RotateRequest>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        blocking(&state, move |a| a.rotate(&actor, body.reason.as_deref(), smqtt_wire::UnixTime::now().as_secs()))
            .await?,
    ))
}

async fn list_devices(State(state): State<AppState>, Admin(_): Admin) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(DeviceList { devices: blocking(&state, |a| a.devices()).await? }))
}

async fn add_device(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiJson(body): ApiJson<NewDevice>,
) -> Result<impl IntoResponse, ApiError> {
    let created = blocking(&state, move |a| a.add_device(&actor, &body, smqtt_wire::UnixTime::now().as_secs())).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn show_device(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(blocking(&state, move |a| a.device(&id)).await?))
}

async fn revoke_device(
    State(state): State<AppState>,
    Admin(actor): Admin,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(blocking(&state, move |a| a.revoke(&actor, &id, smqtt_wire::UnixTime::now().as_secs())).await?))
}

async fn enroll(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EnrollRequest>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(blocking(&state, move |a| a.enroll(&body, smqtt_wire::UnixTime::now().as_secs())).await?))
}

async fn issue_key(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<KeyRequestBody>,
) -> Result<impl IntoResponse, ApiError> {
    let issued = blocking(&state, move |a| a.issue_key(&body, smqtt_wire::UnixTime::now().as_secs())).await?;
    state.metrics.key_issued();
    Ok(Json(issued))
}

fn query_limit(query: Option<&str>) -> Result<u32, ApiError> {
    let Some(query) = query else { return Ok(100) };
    for pair in query.split('&') {
        if let Some(value) = pair.strip_prefix("limit=") {
            return value
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", "limit must be 1..=10000"));
        }
    }
    Ok(100)
}

async fn audit(
    State(state): State<AppState>,
    Admin(_): Admin,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let limit = query_limit(query.as_deref())?;
    Ok(Json(AuditLog { entries: blocking(&state, move |a| a.audit(limit)).await? }))
}

async fn audit_verify(State(state): State<AppState>, Admin(_): Admin) -> Result<impl IntoResponse, ApiError> {
    let v = blocking(&state, |a| a.audit_verify()).await?;
    Ok(Json(AuditVerification { ok: v.problem.is_none(), entries: v.entries, problem: v.problem }))
}

/// Writes the configured statement file (if any) before anything is served.
async fn write_statement_file(authority: &Arc<Authority>) -> crate::Result<()> {
    let authority = authority.clone();
    match tokio::task::spawn_blocking(move || authority.write_statement_file().map(|p| p.is_some())).await {
        Ok(result) => result.map(|_| ()),
        Err(panic) => {
            Err(crate::Error::Internal { what: "statement file task panicked", source: Some(Box::new(panic)) })
        }
    }
}

/// How long [`serve_tls`] lets open connections finish after `shutdown` before it closes them.
pub(crate) const TLS_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves `state` on `listener` (HTTP/1.1) until `shutdown` completes, running the periodic epoch rotation
/// alongside. With `[epochs] statement_file` set, writes the current epoch's statement there first (and after
/// every epoch change).
///
/// Connections are bounded by `[limits]`: `max_connections` open at once (at the limit, accepting pauses),
/// `max_connections_per_ip` per IPv4 address or IPv6 /64 (more are closed on accept), `header_timeout_secs`
/// for a complete request head (from accept and after every response, so also for idle keep-alive),
/// `idle_timeout_secs` without a byte moving while no request is handled, and `request_timeout_secs` per
/// request. On `shutdown`, accepting stops and open connections finish their current request and close.
///
/// # Errors
/// [`crate::Error::Io`] if the statement file cannot be written.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> crate::Result<()> {
    write_statement_file(&state.authority).await?;
    let limits = conn::ConnLimits::new(&state.authority.config().limits);
    let scheduler = tokio::spawn(rotation_scheduler(state.authority.clone()));
    conn::run(listener, None, router(state), limits, shutdown, None).await;
    scheduler.abort();
    Ok(())
}

/// Like [`serve`], over TLS with the PEM certificate chain and private key in `tls` (rustls, TLS 1.2/1.3,
/// ALPN `http/1.1`). Each handshake has `tls_handshake_timeout_secs`, in the connection's own task; on
/// `shutdown`, open connections get [`TLS_SHUTDOWN_GRACE`] to finish, then are closed.
///
/// # Errors
/// [`crate::Error::Config`] for unusable PEM files, [`crate::Error::Listener`] if the listener cannot be set up,
/// [`crate::Error::Io`] if the statement file cannot be written.
pub async fn serve_tls(
    state: AppState,
    listener: std::net::TcpListener,
    tls: &crate::TlsConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> crate::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
        .await
        .map_err(|e| crate::Error::config_from(format!("TLS certificate or key unusable: {e}"), e))?;
    // Only HTTP/1.1 is served (its bounds are the ones above), so only it is offered.
    let mut server_config = rustls::ServerConfig::clone(&config.get_inner());
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let listener_error = |source| crate::Error::Listener { source };
    listener.set_nonblocking(true).map_err(listener_error)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(listener_error)?;
    write_statement_file(&state.authority).await?;
    let limits = conn::ConnLimits::new(&state.authority.config().limits);
    let scheduler = tokio::spawn(rotation_scheduler(state.authority.clone()));
    let app = router(state);
    conn::run(listener, Some(Arc::new(server_config)), app, limits, shutdown, Some(TLS_SHUTDOWN_GRACE)).await;
    scheduler.abort();
    Ok(())
}

async fn rotation_scheduler(authority: Arc<Authority>) {
    if authority.config().epochs.rotation_interval_secs == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let authority = authority.clone();
        match tokio::task::spawn_blocking(move || authority.rotate_if_due(smqtt_wire::UnixTime::now().as_secs())).await
        {
            Ok(Ok(Some(epoch))) => tracing::info!(epoch = epoch.epoch, "epoch rotated (periodic)"),
            Ok(Ok(None)) => {}
            Ok(Err(error)) => tracing::error!(%error, "periodic rotation failed"),
            Err(_) => tracing::error!("periodic rotation task panicked"),
        }
    }
}
