//! rumqttd 0.20 in-process, accepting anyone: the plain broker the SDK runs over, an impostor with a TLS
//! listener, a bench's reference broker. Its threads live until the process exits (rumqttd cannot be stopped).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use crate::ports::{free_addr, wait_listening};
use crate::wait::WAIT;

/// A rumqttd configuration: MQTT 3.1.1 or 5, its listeners and limits; [`Rumqttd::start`].
#[derive(Debug, Clone)]
pub struct Rumqttd {
    v5: bool,
    listeners: Vec<(String, SocketAddr, Option<rumqttd::TlsConfig>)>,
    max_payload_size: usize,
    next_connection_delay_ms: u64,
    max_connections: usize,
    max_segment_size: usize,
    max_segment_count: usize,
}

impl Rumqttd {
    /// MQTT 3.1.1, payloads up to 1 MiB, 1000 connections, 10 segments of 1 MiB (the SDK tests' settings).
    pub fn v4() -> Rumqttd {
        Rumqttd {
            v5: false,
            listeners: Vec::new(),
            max_payload_size: 1 << 20,
            next_connection_delay_ms: 1,
            max_connections: 1000,
            max_segment_size: 1 << 20,
            max_segment_count: 10,
        }
    }

    /// [`v4`](Self::v4) with MQTT 5 listeners instead.
    pub fn v5() -> Rumqttd {
        Rumqttd { v5: true, ..Rumqttd::v4() }
    }

    /// A plain listener on a free loopback port (the first one is added by [`start`](Self::start) if none is).
    pub fn listener(mut self, name: &str) -> Rumqttd {
        self.listeners.push((name.to_owned(), free_addr(), None));
        self
    }

    /// A TLS listener on a free loopback port presenting `cert` (PEM chain) with `key`.
    pub fn tls_listener(mut self, name: &str, cert: &Path, key: &Path) -> Rumqttd {
        let tls = rumqttd::TlsConfig::Rustls {
            capath: None,
            certpath: cert.display().to_string(),
            keypath: key.display().to_string(),
        };
        self.listeners.push((name.to_owned(), free_addr(), Some(tls)));
        self
    }

    /// The largest payload accepted.
    pub fn max_payload_size(mut self, bytes: usize) -> Rumqttd {
        self.max_payload_size = bytes;
        self
    }

    /// The pause between accepting two connections.
    pub fn next_connection_delay_ms(mut self, ms: u64) -> Rumqttd {
        self.next_connection_delay_ms = ms;
        self
    }

    /// The router's connection limit.
    pub fn max_connections(mut self, n: usize) -> Rumqttd {
        self.max_connections = n;
        self
    }

    /// The router's commit log: segment size and count.
    pub fn segments(mut self, size: usize, count: usize) -> Rumqttd {
        self.max_segment_size = size;
        self.max_segment_count = count;
        self
    }

    /// Starts the broker on a thread of its own and waits until every listener accepts connections; their
    /// addresses, in the order they were added.
    pub fn start(mut self) -> Vec<SocketAddr> {
        if self.listeners.is_empty() {
            self = self.listener("1");
        }
        let addrs: Vec<SocketAddr> = self.listeners.iter().map(|(_, addr, _)| *addr).collect();
        let servers: HashMap<String, rumqttd::ServerSettings> = self
            .listeners
            .into_iter()
            .map(|(name, listen, tls)| {
                let settings = rumqttd::ServerSettings {
                    name: name.clone(),
                    listen,
                    tls,
                    next_connection_delay_ms: self.next_connection_delay_ms,
                    connections: rumqttd::ConnectionSettings {
                        connection_timeout_ms: 5000,
                        max_payload_size: self.max_payload_size,
                        max_inflight_count: 100,
                        auth: None,
                        external_auth: None,
                        dynamic_filters: true,
                    },
                };
                (name, settings)
            })
            .collect();
        let router = rumqttd::RouterConfig {
            max_connections: self.max_connections,
            max_outgoing_packet_count: 200,
            max_segment_size: self.max_segment_size,
            max_segment_count: self.max_segment_count,
            custom_segment: None,
            initialized_filters: None,
            ..Default::default()
        };
        let config = if self.v5 {
            rumqttd::Config { id: 0, router, v5: Some(servers), ..Default::default() }
        } else {
            rumqttd::Config { id: 0, router, v4: Some(servers), ..Default::default() }
        };
        std::thread::Builder::new()
            .name("rumqttd".into())
            .spawn(move || {
                let mut broker = rumqttd::Broker::new(config);
                if let Err(e) = broker.start() {
                    eprintln!("rumqttd stopped: {e}");
                }
            })
            .expect("spawn rumqttd");
        for addr in &addrs {
            assert!(wait_listening(*addr, WAIT), "rumqttd did not start on {addr}");
        }
        addrs
    }

    /// [`start`](Self::start) for a broker with one listener: its address.
    pub fn start_one(self) -> SocketAddr {
        self.start().first().copied().expect("rumqttd has a listener")
    }
}

/// rumqttd with one MQTT 3.1.1 listener on a free loopback port.
pub fn start_rumqttd() -> SocketAddr {
    Rumqttd::v4().start_one()
}

/// rumqttd with one MQTT 5 listener on a free loopback port.
pub fn start_rumqttd_v5() -> SocketAddr {
    Rumqttd::v5().start_one()
}
