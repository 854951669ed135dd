//! TLS to the broker: [`TlsConfig`], our own description of it, turned into the rustls client configuration
//! rumqttc is handed (the ring provider, TLS 1.2/1.3, no process-wide default provider); and the state of the
//! connection, which tells a failed TLS handshake from other failures among rumqttc's connection errors.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use zeroize::Zeroizing;

use crate::error::{boxed_cause, Error};

/// TLS to the broker (rustls on ring, TLS 1.2 or 1.3). The server's certificate is always verified: against the
/// CAs of a PEM file or the operating system's trusted CAs, for the host the client connects to (or the name set
/// with [`with_server_name`](Self::with_server_name)). There is no way to skip verification.
///
/// ```no_run
/// # fn run() -> Result<(), smqtt_client::Error> {
/// use smqtt_client::{ClientConfig, TlsConfig};
/// let mut config = ClientConfig::new("broker.example", 8883);
/// config.tls = Some(
///     TlsConfig::ca_file("ca.pem".as_ref())?
///         .with_client_cert_files("device.pem".as_ref(), "device.key".as_ref())?, // mutual TLS, if asked for
/// );
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    roots: Roots,
    server_name: Option<ServerName<'static>>,
    identity: Option<ClientIdentity>,
}

#[derive(Clone)]
enum Roots {
    /// The operating system's (rustls-native-certs: `SSL_CERT_FILE` / `SSL_CERT_DIR` when set).
    System,
    /// Parsed from PEM.
    Pem(Vec<CertificateDer<'static>>),
}

/// A client certificate chain and its key, as PEM (parsed when a connection is set up; checked when given).
#[derive(Clone)]
struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key_pem: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let roots = match &self.roots {
            Roots::System => "system".to_owned(),
            Roots::Pem(certs) => format!("{} CA certificate(s)", certs.len()),
        };
        let client = self.identity.as_ref().map(|i| format!("{} certificate(s), key redacted", i.chain.len()));
        f.debug_struct("TlsConfig")
            .field("roots", &roots)
            .field("server_name", &self.server_name.as_ref().map(|n| n.to_str()))
            .field("client_certificate", &client)
            .finish()
    }
}

fn read(what: &str, path: &Path) -> Result<Zeroizing<Vec<u8>>, Error> {
    std::fs::read(path).map(Zeroizing::new).map_err(|e| Error::tls_from(format!("{what} {}", path.display()), e))
}

/// Every certificate of a PEM text (at least one; none that does not decode).
fn certificates(what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::tls_from(format!("{what}: invalid PEM"), e))?;
    if certs.is_empty() {
        return Err(Error::tls(format!("{what}: no PEM certificate in it")));
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsConfig {
    /// Trust the operating system's CAs (as `rustls-native-certs` finds them; `SSL_CERT_FILE` / `SSL_CERT_DIR`
    /// when set). Connecting fails with [`Error::Tls`] if there are none.
    pub fn system_roots() -> TlsConfig {
        TlsConfig { roots: Roots::System, server_name: None, identity: None }
    }

    /// Trust the CA certificates of a PEM text (one or more `CERTIFICATE` blocks).
    ///
    /// # Errors
    /// [`Error::Tls`] for text without a certificate, or one that is not a usable trust anchor.
    pub fn ca_pem(pem: &[u8]) -> Result<TlsConfig, Error> {
        TlsConfig::ca("CA", pem)
    }

    /// Trust the CA certificates of a PEM file (as mosquitto's `--cafile`).
    ///
    /// # Errors
    /// [`Error::Tls`] for an unreadable file, or one without a usable certificate.
    pub fn ca_file(path: &Path) -> Result<TlsConfig, Error> {
        let pem = read("CA file", path)?;
        TlsConfig::ca(&format!("CA file {}", path.display()), &pem)
    }

    fn ca(what: &str, pem: &[u8]) -> Result<TlsConfig, Error> {
        let certs = certificates(what, pem)?;
        let mut store = RootCertStore::empty();
        for cert in &certs {
            store.add(cert.clone()).map_err(|e| Error::tls_from(format!("{what}: not a usable CA certificate"), e))?;
        }
        Ok(TlsConfig { roots: Roots::Pem(certs), server_name: None, identity: None })
    }

    /// Verify the server's certificate for `name` (a DNS name or an IP address) instead of the host connected to.
    /// The TLS SNI extension still carries the host.
    ///
    /// # Errors
    /// [`Error::Tls`] for a name that is neither.
    pub fn with_server_name(mut self, name: &str) -> Result<TlsConfig, Error> {
        let parsed = ServerName::try_from(name.to_owned())
            .map_err(|_| Error::tls(format!("server name {name:?} is neither a DNS name nor an IP address")))?;
        self.server_name = Some(parsed);
        Ok(self)
    }

    /// Present this client certificate chain and key (PEM; the key PKCS#8, PKCS#1 or SEC1) to a broker that asks
    /// for one (mutual TLS).
    ///
    /// # Errors
    /// [`Error::Tls`] for a chain without a certificate, a key that does not parse, or a key that is not the
    /// certificate's.
    pub fn with_client_cert_pem(self, cert_chain: &[u8], key: &[u8]) -> Result<TlsConfig, Error> {
        self.with_identity("client certificate", cert_chain, "client key", key)
    }

    /// [`with_client_cert_pem`](Self::with_client_cert_pem) from files (as mosquitto's `--cert` and `--key`).
    ///
    /// # Errors
    /// [`Error::Tls`] for an unreadable file, and as [`with_client_cert_pem`](Self::with_client_cert_pem).
    pub fn with_client_cert_files(self, cert_chain: &Path, key: &Path) -> Result<TlsConfig, Error> {
        let chain_pem = read("client certificate", cert_chain)?;
        let key_pem = read("client key", key)?;
        let cert_what = format!("client certificate {}", cert_chain.display());
        self.with_identity(&cert_what, &chain_pem, &format!("client key {}", key.display()), &key_pem)
    }

    fn with_identity(mut self, cert_what: &str, chain: &[u8], key_what: &str, key: &[u8]) -> Result<TlsConfig, Error> {
        let identity = ClientIdentity { chain: certificates(cert_what, chain)?, key_pem: Zeroizing::new(key.to_vec()) };
        let key = identity.key(key_what)?;
        rustls::sign::CertifiedKey::from_der(identity.chain.clone(), key, &provider())
            .map_err(|e| Error::tls_from(key_what, e))?;
        self.identity = Some(identity);
        Ok(self)
    }

    /// The rustls client configuration for rumqttc.
    ///
    /// # Errors
    /// [`Error::Tls`]: no trusted CA on this system (with [`system_roots`](Self::system_roots)).
    pub(super) fn rustls(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        let mut roots = RootCertStore::empty();
        match &self.roots {
            Roots::Pem(certs) => {
                roots.add_parsable_certificates(certs.iter().cloned());
            }
            Roots::System => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    let why = found.errors.first().map(|e| format!(" ({e})")).unwrap_or_default();
                    return Err(Error::tls(format!(
                        "no trusted CA certificates found on this system{why}: install ca-certificates, set \
                         SSL_CERT_FILE, or give the broker's CA file"
                    )));
                }
            }
        }
        let provider = provider();
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| Error::tls_from("certificate verifier", e))?;
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::tls_from("TLS configuration", e))?;
        let builder = match &self.server_name {
            None => builder.with_webpki_verifier(verifier),
            // The same WebPKI verification, for the configured name instead of the host.
            Some(name) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NamedVerifier { inner: verifier, name: name.clone() })),
        };
        let config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some(identity) => builder
                .with_client_auth_cert(identity.chain.clone(), identity.key("client key")?)
                .map_err(|e| Error::tls_from("client key", e))?,
        };
        Ok(Arc::new(config))
    }
}

impl ClientIdentity {
    fn key(&self, what: &str) -> Result<PrivateKeyDer<'static>, Error> {
        PrivateKeyDer::from_pem_slice(&self.key_pem)
            .map_err(|e| Error::tls_from(format!("{what}: no usable PEM key"), e))
    }
}

/// WebPKI verification of the server's certificate for a fixed name rather than the host connected to.
#[derive(Debug)]
struct NamedVerifier {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _host: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

/// The connection to the broker as the poll loop last saw it.
#[derive(Clone, Debug)]
pub(super) enum Link {
    /// No attempt has finished yet.
    Connecting,
    /// The broker accepted the CONNECT.
    Up,
    /// The last attempt failed or the connection dropped; `fatal` when retrying alone will not help (a failed
    /// TLS handshake, a refused CONNECT). The poll loop keeps retrying either way.
    Down { error: Error, fatal: bool },
}

impl Link {
    pub(super) fn down(
        error: Box<dyn std::error::Error + Send + Sync>,
        refused: Option<(String, bool)>,
        (host, port): (String, u16),
    ) -> Link {
        if let Some((reason, permanent)) = refused {
            let error = Error::ConnectRefused { broker: format!("{host}:{port}"), reason, permanent };
            return Link::Down { error, fatal: permanent };
        }
        if let Some(reason) = tls_failure(&*error) {
            tracing::warn!(%reason, "TLS to the broker failed");
            let message = format!("{host}:{port}: {reason}");
            return Link::Down { error: Error::Tls { message, source: Some(boxed_cause(error)) }, fatal: true };
        }
        let message = format!("broker {host}:{port}: {error}");
        Link::Down { error: Error::Connect { message, source: Some(boxed_cause(error)) }, fatal: false }
    }
}

/// The TLS failure behind a failed connection attempt (a rustls error anywhere in its chain, also inside an I/O
/// error: a refused certificate, an alert from the broker, an unusable server name), if that is what it was.
pub(super) fn tls_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(current) = next {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        if current.downcast_ref::<rustls::pki_types::InvalidDnsNameError>().is_some() {
            return Some("the broker host is not a valid TLS server name".to_owned());
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                return Some(tls.to_string());
            }
        }
        next = current.source();
    }
    None
}
