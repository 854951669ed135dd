//! The front door of every listener. The broker accepts connections itself, on a runtime of its own with a
//! worker per core, and relays each to rumqttd's own listener on a loopback port, first writing a header:
//! `SMQTTPX2`, a per-process random secret (16 bytes), the client's address (16 bytes, IPv4 mapped) and the
//! connection's lane (8 bytes, `precheck.rs`). The guard reads and checks the header before any MQTT byte; a
//! connection without it (say, a local process dialling the loopback port directly) is closed. Two reasons:
//!
//! * rumqttd gives its `Protocol` (our guard) no peer address, and the gate needs one to throttle password
//!   guessing per source;
//! * the gate's PUBLISH decisions are made here, frame by frame before forwarding (`precheck.rs`), not on the
//!   one thread rumqttd moves all of a listener's packets on.
//!
//! On a TLS listener the front door also terminates TLS (rustls, the listener's `certpath`/`keypath`,
//! handshake within `connection_timeout_ms`) and relays the plaintext.
//!
//! Bound: at most `[limits] max_connections` relayed connections at once (further ones are closed on accept,
//! as rumqttd would refuse them anyway); each costs two sockets, one task and a read buffer of at most one
//! packet (`max_packet_size`), and ends as soon as either side does (rumqttd's connection timeout and
//! keep-alive bound an idle client).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use bytes::BytesMut;
use rand_core::RngCore;
use rumqttd::protocol::Protocol;
use smqtt_gate::Gate;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::precheck::{frame_len, Checker, Lanes, MAX_PENDING_UNITS};

const MAGIC: &[u8; 8] = b"SMQTTPX2";
/// The header's length: magic, secret, address, lane.
pub(crate) const HEADER_LEN: usize = 8 + 16 + 16 + 8;
/// Bytes read from a client at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Budget units of decided frames held back at most before they are written to rumqttd: with one frame's
/// decision (at most a quarter of the budget) on top, less than the whole budget, so the lane always drains.
const FLUSH_EVERY: u32 = (MAX_PENDING_UNITS / 2) as u32;

/// The per-process secret that authenticates the header.
#[derive(Clone)]
pub(crate) struct Secret([u8; 16]);

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    pub(crate) fn random() -> Secret {
        let mut bytes = [0; 16];
        rand_core::OsRng.fill_bytes(&mut bytes);
        Secret(bytes)
    }

    fn header(&self, peer: IpAddr, lane: u64) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8..24].copy_from_slice(&self.0);
        let v6 = match peer {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        out[24..40].copy_from_slice(&v6.octets());
        out[40..].copy_from_slice(&lane.to_be_bytes());
        out
    }

    /// The client's address and the connection's lane from a header (`None`: not a header of this process).
    pub(crate) fn parse(&self, bytes: &[u8]) -> Option<(IpAddr, u64)> {
        let header = bytes.get(..HEADER_LEN)?;
        // Constant time over the secret.
        let diff = header[8..24].iter().zip(&self.0).fold(0u8, |d, (a, b)| d | (a ^ b));
        if &header[..8] != MAGIC || diff != 0 {
            return None;
        }
        let octets: [u8; 16] = header[24..40].try_into().ok()?;
        let lane: [u8; 8] = header[40..].try_into().ok()?;
        Some((Ipv6Addr::from(octets).to_canonical(), u64::from_be_bytes(lane)))
    }
}

/// How the front door accepts: plain TCP, or TLS with this acceptor and handshake bound.
#[derive(Clone)]
pub(crate) enum Entry {
    Plain,
    Tls { acceptor: tokio_rustls::TlsAcceptor, handshake: std::time::Duration },
}

/// A TLS acceptor for the PEM chain and key at these paths (TLS 1.2/1.3, ring).
pub(crate) fn tls_acceptor(
    certpath: &std::path::Path,
    keypath: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(certpath)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", certpath.display()))?;
    let key = PrivateKeyDer::from_pem_file(keypath).map_err(|e| format!("{}: {e}", keypath.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| format!("TLS: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// What every relayed connection of a listener shares.
#[derive(Clone)]
pub(crate) struct Door<P> {
    pub(crate) entry: Entry,
    /// rumqttd's loopback listener.
    pub(crate) internal: SocketAddr,
    pub(crate) secret: Secret,
    pub(crate) max_connections: usize,
    /// The listener's codec (rumqttd's V4 or V5), for deciding PUBLISH frames.
    pub(crate) codec: P,
    pub(crate) gate: Arc<Gate>,
    pub(crate) lanes: Arc<Lanes>,
    /// `[limits] max_packet_size`.
    pub(crate) max_packet: usize,
    /// How long a PUBLISH after the CONNECT waits for the guard's login decision.
    pub(crate) login_wait: std::time::Duration,
}

/// Accepts on `public` and relays every connection to `door.internal` (rumqttd), header first. Runs forever.
pub(crate) async fn relay<P: Protocol + Clone + Send + Sync + 'static>(public: TcpListener, door: Door<P>) {
    let max_connections = door.max_connections;
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    loop {
        let (client, peer) = match public.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                // E.g. out of file descriptors: do not spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::info!(%peer, "connection refused: max_connections relayed");
            continue;
        };
        let door = door.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = client.set_nodelay(true);
            match door.entry.clone() {
                Entry::Plain => connect_inner(client, peer.ip(), &door).await,
                Entry::Tls { acceptor, handshake } => {
                    match tokio::time::timeout(handshake, acceptor.accept(client)).await {
                        Ok(Ok(client)) => connect_inner(client, peer.ip(), &door).await,
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Connects to rumqttd, sends the header, relays.
async fn connect_inner<S: AsyncRead + AsyncWrite + Unpin, P: Protocol + Clone>(
    client: S,
    peer: IpAddr,
    door: &Door<P>,
) {
    let Ok(mut inner) = TcpStream::connect(door.internal).await else { return };
    let _ = inner.set_nodelay(true);
    let lane = door.lanes.open();
    if inner.write_all(&door.secret.header(peer, lane.id)).await.is_err() {
        return;
    }
    let checker =
        Checker::new(door.codec.clone(), door.gate.clone(), lane.lane.clone(), door.max_packet, door.login_wait);
    relay_until_either_ends(client, inner, checker, door.max_packet).await;
    drop(lane);
}

/// Relays both ways until *either* side ends, then closes both: when rumqttd drops a client (no CONNECT within
/// `connection_timeout_ms`, a refused CONNECT, keep-alive), the client's socket and its slot go with it, even if
/// the client never closes its half. Client to broker goes frame by frame through `checker`.
async fn relay_until_either_ends<S: AsyncRead + AsyncWrite + Unpin, P: Protocol>(
    client: S,
    inner: TcpStream,
    checker: Checker<P>,
    max_packet: usize,
) {
    let (from_client, mut to_client) = tokio::io::split(client);
    let (from_inner, to_inner) = tokio::io::split(inner);
    // Broker to client in reads of up to READ_CHUNK (tokio's `copy` moves 8 KiB at a time: a subscriber's
    // deliveries would cost a system call per dozen envelopes).
    let mut from_inner = tokio::io::BufReader::with_capacity(READ_CHUNK, from_inner);
    tokio::select! {
        _ = forward_checked(from_client, to_inner, checker, max_packet) => {}
        _ = tokio::io::copy_buf(&mut from_inner, &mut to_client) => {}
    }
    let _ = to_client.shutdown().await;
}

/// Client to broker: every complete frame read is checked (in order) and the checked frames of a read are
/// written on together. Ends at the client's EOF, an I/O error, or a frame that is malformed or larger than
/// `max_packet` (rumqttd would close the connection for it too); then shuts the broker side.
async fn forward_checked<R: AsyncRead + Unpin, W: AsyncWrite + Unpin, P: Protocol>(
    mut from_client: R,
    mut to_inner: W,
    mut checker: Checker<P>,
    max_packet: usize,
) {
    let mut buffer = BytesMut::with_capacity(READ_CHUNK);
    'relay: loop {
        // `buffer[..checked]`: frames decided but not yet written; `held`: the budget their decisions hold.
        let (mut checked, mut held) = (0, 0);
        loop {
            match frame_len(&buffer[checked..], max_packet) {
                Ok(Some(len)) => {
                    // Write what is decided before waiting on the guard: for the login, the CONNECT must reach
                    // it; and the decisions of unwritten frames must stay within the lane's budget, or it never
                    // drains.
                    let frame = &buffer[checked..checked + len];
                    if checked > 0 && (held >= FLUSH_EVERY || checker.awaits_login(frame)) {
                        let frames = buffer.split_to(checked);
                        if to_inner.write_all(&frames).await.is_err() {
                            break 'relay;
                        }
                        (checked, held) = (0, 0);
                    }
                    held += checker.before_forwarding(&buffer[checked..checked + len]).await;
                    checked += len;
                }
                Ok(None) => break,
                Err(()) => {
                    tracing::debug!("front door: malformed or oversized frame; closing");
                    let _ = to_inner.write_all(&buffer[..checked]).await;
                    break 'relay;
                }
            }
        }
        if checked > 0 {
            let frames = buffer.split_to(checked);
            if to_inner.write_all(&frames).await.is_err() {
                break;
            }
        }
        buffer.reserve(READ_CHUNK);
        match from_client.read_buf(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let _ = to_inner.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_need_the_secret() {
        let (a, b) = (Secret::random(), Secret::random());
        for ip in ["127.0.0.2", "2001:db8::7"] {
            let ip: IpAddr = ip.parse().expect("an address");
            assert_eq!(a.parse(&a.header(ip, 7)), Some((ip, 7)));
            assert_eq!(b.parse(&a.header(ip, 7)), None);
        }
        assert_eq!(a.parse(&[0x10, 0, 0, 0]), None);
    }
}
