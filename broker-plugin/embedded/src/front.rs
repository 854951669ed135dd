//! The front door of a plain-TCP listener. rumqttd gives its `Protocol` (our guard) no peer address, and the
//! gate needs one to throttle password guessing per source. So the broker accepts plain-TCP connections itself
//! and relays each to rumqttd's own listener on a loopback port, first writing a header that names the client's
//! address: `SMQTTPX1`, a per-process random secret (16 bytes), the address (16 bytes, IPv4 mapped). The guard
//! reads and checks the header before any MQTT byte; a connection without it (say, a local process dialling the
//! loopback port directly) is closed. On a TLS listener the front door also terminates TLS (rustls, the
//! listener's `certpath`/`keypath`, handshake within `connection_timeout_ms`) and relays the plaintext, so TLS
//! clients are told apart by address too.
//!
//! Bound: at most `[limits] max_connections` relayed connections at once (further ones are closed on accept,
//! as rumqttd would refuse them anyway); each costs two sockets and one task, and ends as soon as either side
//! does (rumqttd's connection timeout and keep-alive bound an idle client).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use rand_core::RngCore;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

const MAGIC: &[u8; 8] = b"SMQTTPX1";
/// The header's length: magic, secret, address.
pub(crate) const HEADER_LEN: usize = 8 + 16 + 16;

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

    fn header(&self, peer: IpAddr) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8..24].copy_from_slice(&self.0);
        let v6 = match peer {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        out[24..].copy_from_slice(&v6.octets());
        out
    }

    /// The client's address from a header (`None`: not a header of this process).
    pub(crate) fn parse(&self, bytes: &[u8]) -> Option<IpAddr> {
        let header = bytes.get(..HEADER_LEN)?;
        // Constant time over the secret.
        let diff = header[8..24].iter().zip(&self.0).fold(0u8, |d, (a, b)| d | (a ^ b));
        if &header[..8] != MAGIC || diff != 0 {
            return None;
        }
        let octets: [u8; 16] = header[24..].try_into().ok()?;
        Some(Ipv6Addr::from(octets).to_canonical())
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

/// Accepts on `public` and relays every connection to `internal` (rumqttd), header first. Runs forever.
pub(crate) async fn relay(
    public: TcpListener,
    entry: Entry,
    internal: SocketAddr,
    secret: Secret,
    max_connections: usize,
) {
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
        let header = secret.header(peer.ip());
        let entry = entry.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = client.set_nodelay(true);
            match entry {
                Entry::Plain => connect_inner(client, internal, &header).await,
                Entry::Tls { acceptor, handshake } => {
                    match tokio::time::timeout(handshake, acceptor.accept(client)).await {
                        Ok(Ok(client)) => connect_inner(client, internal, &header).await,
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Connects to rumqttd, sends the header, relays.
async fn connect_inner<S: AsyncRead + AsyncWrite + Unpin>(client: S, internal: SocketAddr, header: &[u8]) {
    let Ok(mut inner) = TcpStream::connect(internal).await else { return };
    let _ = inner.set_nodelay(true);
    if inner.write_all(header).await.is_err() {
        return;
    }
    relay_until_either_ends(client, inner).await;
}

/// Copies both ways until *either* side ends, then closes both: when rumqttd drops a client (no CONNECT within
/// `connection_timeout_ms`, a refused CONNECT, keep-alive), the client's socket and its slot go with it, even if
/// the client never closes its half.
async fn relay_until_either_ends<S: AsyncRead + AsyncWrite + Unpin>(client: S, inner: TcpStream) {
    let (mut from_client, mut to_client) = tokio::io::split(client);
    let (mut from_inner, mut to_inner) = tokio::io::split(inner);
    tokio::select! {
        _ = tokio::io::copy(&mut from_client, &mut to_inner) => {}
        _ = tokio::io::copy(&mut from_inner, &mut to_client) => {}
    }
    let _ = to_client.shutdown().await;
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
            assert_eq!(a.parse(&a.header(ip)), Some(ip));
            assert_eq!(b.parse(&a.header(ip)), None);
        }
        assert_eq!(a.parse(&[0x10, 0, 0, 0]), None);
    }
}
