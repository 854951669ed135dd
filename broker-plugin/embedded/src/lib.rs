//! The embedded SMQTT broker: rumqttd 0.20 in-process with the [`smqtt_gate`] wired into every connection.
//!
//! [`start`] spawns rumqttd's router, one thread per MQTT listener (v3.1.1 and/or v5, optional TLS) whose codec is
//! wrapped by the gate's guard (see `guard.rs`: CONNECT authentication and will checks, PUBLISH and SUBSCRIBE
//! checks with MQTT 5 reason codes, topic aliases resolved, keep-alive 0 accepted, v5 properties stripped for
//! v3.1.1 subscribers), and an HTTP thread serving `GET /metrics`. It returns the bound addresses.
//!
//! ```no_run
//! use smqtt_broker::{start, BrokerConfig};
//!
//! let config = BrokerConfig::from_toml_str(
//!     r#"
//!     [v4]
//!     listen = "127.0.0.1:0"
//!     [metrics]
//!     listen = "127.0.0.1:0"
//!     [gate]
//!     enforcement = false
//!     [gate.topics]
//!     deny_subscribe = ["test/nosubscribe"]
//!     "#,
//!     std::path::Path::new("."),
//! )?;
//! let broker = start(config)?;
//! println!("MQTT on {:?}, metrics on {:?}", broker.v4, broker.metrics);
//! # Ok::<(), smqtt_broker::Error>(())
//! ```
//!
//! What a refusal looks like to a client: a refused CONNECT gets a CONNACK with the refusal's code (v3.1.1: 4
//! bad user name or password, 2 identifier rejected for a client id outside the client's own space, 5 not
//! authorised; v5: 0x86, 0x85, 0x87, …) and the connection closes. Client ids: a device `<device_id>` or
//! `<device_id>/<suffix>`, a legacy client `legacy:<username>[/<suffix>]`, an anonymous one `anon:<…>` (an
//! anonymous client that sends an empty id with a clean session is given `anon:<random>`). A refused QoS 0
//! PUBLISH is dropped; QoS 1 gets a PUBACK with the reason (v5: 0x87 not authorised, 0x99 payload format
//! invalid, 0x97 quota exceeded for oversize; v3.1.1: a plain PUBACK) and the message is dropped; QoS 2 gets a
//! plain PUBREC and is dropped. A refused SUBSCRIBE filter gets 0x80 (v3.1.1) or 0x87/0x8F (v5) in the SUBACK.
//! A refused will refuses the CONNECT. Protocol violations close the connection.
//!
//! Every listener is accepted by the broker's front door (TLS terminated there), on a runtime of its own with a
//! worker per core, and relayed to rumqttd on a loopback port behind an authenticated header naming the
//! client's address (`front.rs`), so the gate can throttle password guessing per source. The front door also
//! decides each PUBLISH before rumqttd's single listener thread sees it (`precheck.rs`): signature checks
//! never stall the thread that moves every client's packets, and a publisher faster than the checks is slowed
//! down through TCP instead of overrunning rumqttd's bounded log.
//!
//! rumqttd has no shutdown: the broker's threads run until the process exits.

mod authority_link;
mod config;
mod front;
mod guard;
mod metrics;
mod precheck;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttd::protocol::v4::V4;
use rumqttd::protocol::v5::V5;
use rumqttd::{ConnectionSettings, LinkType, Router, RouterConfig, Server, ServerSettings};
use smqtt_gate::{AuthorityLink, Gate};

use authority_link::HttpAuthorityLink;
pub use config::{BrokerConfig, Limits, ListenerConfig, MetricsConfig, TlsFiles};
pub use guard::QUARANTINE_TOPIC;
use guard::{Guard, GuardMetrics, Version};
use precheck::Lanes;

/// Everything that can stop the broker from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The broker configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// A file could not be read.
    #[error("{0}")]
    Io(String),
    /// The gate's configuration is invalid.
    #[error("gate: {0}")]
    Gate(#[from] smqtt_gate::GateError),
    /// A listener could not be bound or did not come up.
    #[error("cannot listen on {addr}: {message}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
    /// A thread could not be started.
    #[error("cannot start thread: {0}")]
    Thread(String),
}

/// A started broker: where it listens. Its threads run until the process exits.
#[derive(Debug, Clone)]
pub struct RunningBroker {
    /// The MQTT 3.1.1 listener.
    pub v4: Option<SocketAddr>,
    /// The MQTT 5 listener.
    pub v5: Option<SocketAddr>,
    /// The `GET /metrics` endpoint.
    pub metrics: Option<SocketAddr>,
    gate: Arc<Gate>,
    guards: Arc<GuardMetrics>,
}

impl RunningBroker {
    /// The gate deciding for this broker.
    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// The metrics text `/metrics` serves.
    pub fn metrics_text(&self) -> String {
        metrics::text(&self.gate, &self.guards)
    }
}

/// An address with its port resolved: port 0 picks a free port now (rumqttd binds by address itself).
fn concrete(addr: SocketAddr) -> Result<SocketAddr, Error> {
    let bind_error = |e: std::io::Error| Error::Bind { addr, message: e.to_string() };
    let probe = TcpListener::bind(addr).map_err(bind_error)?;
    probe.local_addr().map_err(bind_error)
}

fn wait_listening(addr: SocketAddr) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let target = if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(Error::Bind { addr, message: "the listener did not come up".into() })
}

/// The front doors' runtime: a worker per core, on threads of its own that run until the process exits.
fn front_runtime() -> Result<tokio::runtime::Handle, Error> {
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("smqtt-front")
        .enable_all()
        .build()
        .map_err(|e| Error::Thread(e.to_string()))?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("smqtt-front-main".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))
        .map_err(|e| Error::Thread(e.to_string()))?;
    Ok(handle)
}

/// Starts the front door of one listener on `runtime`.
fn spawn_front<P: rumqttd::protocol::Protocol + Clone + Send + Sync + 'static>(
    runtime: &tokio::runtime::Handle,
    public: TcpListener,
    door: front::Door<P>,
) {
    runtime.spawn(async move {
        match tokio::net::TcpListener::from_std(public) {
            Ok(public) => front::relay(public, door).await,
            Err(e) => tracing::error!(error = %e, "cannot use the listener"),
        }
    });
}

fn router_config(limits: &Limits) -> RouterConfig {
    RouterConfig {
        max_connections: limits.max_connections,
        max_outgoing_packet_count: limits.max_outgoing_packet_count,
        max_segment_size: limits.max_segment_size,
        max_segment_count: limits.max_segment_count,
        custom_segment: None,
        initialized_filters: None,
        ..Default::default()
    }
}

/// rumqttd's settings for a listener on the front door's loopback port `addr` (plain TCP: the front door
/// terminates any TLS).
fn server_settings(config: &BrokerConfig, name: &str, addr: SocketAddr) -> ServerSettings {
    let limits = &config.limits;
    ServerSettings {
        name: name.to_owned(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: limits.connection_timeout_ms,
            max_payload_size: limits.max_packet_size,
            max_inflight_count: limits.max_inflight_count,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    }
}

/// Starts the broker: the gate from the configuration, rumqttd's router, the listeners and the metrics
/// endpoint; returns once every listener accepts connections.
///
/// # Errors
/// [`Error::Gate`] for the gate's configuration, [`Error::Bind`] for a listener that cannot be bound,
/// [`Error::Io`] / [`Error::Config`] for TLS files, [`Error::Thread`].
pub fn start(config: BrokerConfig) -> Result<RunningBroker, Error> {
    config.validate()?;
    let link: Arc<dyn AuthorityLink> = Arc::new(HttpAuthorityLink);
    let gate = Arc::new(match (&config.gate, &config.gate_config) {
        (Some(table), _) => Gate::from_toml_str_linked(&table.to_string(), &config.base_dir, Some(link))?,
        (None, Some(path)) => Gate::from_toml_file_linked(&config.resolve(path), Some(link))?,
        (None, None) => return Err(Error::Config("no gate configured".into())),
    });
    for listener in [&config.v4, &config.v5].into_iter().flatten() {
        if let Some(tls) = &listener.tls {
            for path in [&tls.certpath, &tls.keypath] {
                let path = config.resolve(path);
                std::fs::metadata(&path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
            }
        }
    }
    let guards = Arc::new(GuardMetrics::default());
    let metrics = match &config.metrics {
        Some(m) => {
            let listener =
                TcpListener::bind(m.listen).map_err(|e| Error::Bind { addr: m.listen, message: e.to_string() })?;
            let (gate, guards) = (gate.clone(), guards.clone());
            let server = smqtt_metrics::MetricsServer::start_on(listener, move || metrics::text(&gate, &guards))
                .map_err(|e| Error::Thread(e.to_string()))?;
            // Like rumqttd's threads, the responder serves until the process exits.
            Some(server.detach())
        }
        None => None,
    };

    let router_tx = Router::new(0, router_config(&config.limits)).spawn();
    let front_runtime = front_runtime()?;
    let lanes = Arc::new(Lanes::default());
    let mut bound: HashMap<&str, SocketAddr> = HashMap::new();
    for (name, listener) in [("v4", &config.v4), ("v5", &config.v5)] {
        let Some(listener) = listener else { continue };
        // The front door accepts on the public address (plain TCP, or TLS it terminates itself), decides
        // PUBLISH frames on its own runtime and relays to rumqttd on a loopback port (see `front.rs`).
        let bind_error = |e: std::io::Error| Error::Bind { addr: listener.listen, message: e.to_string() };
        let public = TcpListener::bind(listener.listen).map_err(bind_error)?;
        public.set_nonblocking(true).map_err(bind_error)?;
        let addr = public.local_addr().map_err(bind_error)?;
        let internal = concrete(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let entry = match &listener.tls {
            None => front::Entry::Plain,
            Some(tls) => front::Entry::Tls {
                acceptor: front::tls_acceptor(&config.resolve(&tls.certpath), &config.resolve(&tls.keypath))
                    .map_err(Error::Config)?,
                handshake: Duration::from_millis(config.limits.connection_timeout_ms.max(1).into()),
            },
        };
        let secret = front::Secret::random();
        let limits = &config.limits;
        macro_rules! door {
            ($codec:expr) => {
                front::Door {
                    entry: entry.clone(),
                    internal,
                    secret: secret.clone(),
                    max_connections: limits.max_connections,
                    codec: $codec,
                    gate: gate.clone(),
                    lanes: lanes.clone(),
                    max_packet: limits.max_packet_size,
                    login_wait: Duration::from_millis(limits.connection_timeout_ms.max(1).into()),
                }
            };
        }
        let version = if name == "v4" { Version::V4 } else { Version::V5 };
        match version {
            Version::V4 => spawn_front(&front_runtime, public, door!(V4)),
            Version::V5 => spawn_front(&front_runtime, public, door!(V5)),
        }
        let settings = server_settings(&config, name, internal);
        let tx = router_tx.clone();
        let (gate, guards, lanes) = (gate.clone(), guards.clone(), lanes.clone());
        std::thread::Builder::new()
            .name(format!("smqtt-{name}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => return tracing::error!(error = %e, "cannot build the listener runtime"),
                };
                runtime.block_on(async move {
                    let secret = Some(secret);
                    let result = match version {
                        Version::V4 => {
                            Server::new(settings, tx, Guard::new(V4, version, gate, guards, secret, lanes))
                                .start(LinkType::Remote)
                                .await
                        }
                        Version::V5 => {
                            Server::new(settings, tx, Guard::new(V5, version, gate, guards, secret, lanes))
                                .start(LinkType::Remote)
                                .await
                        }
                    };
                    if let Err(e) = result {
                        tracing::error!(error = %e, "listener stopped");
                    }
                });
            })
            .map_err(|e| Error::Thread(e.to_string()))?;
        bound.insert(name, addr);
        wait_listening(internal)?;
    }
    for addr in bound.values() {
        wait_listening(*addr)?;
    }
    Ok(RunningBroker { v4: bound.get("v4").copied(), v5: bound.get("v5").copied(), metrics, gate, guards })
}
