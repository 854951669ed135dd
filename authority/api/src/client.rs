//! A blocking client for the authority's HTTP API, for administrators (the CLI) and devices (the SDK).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand_core::{CryptoRng, RngCore};
use serde::de::DeserializeOwned;
use serde::Serialize;
use smqtt_abe::{PublicKey, UserKey};
use smqtt_wire::{
    enrollment_signing_bytes, DeviceId, KeyRequest, ReplySecret, SigningKey, UnverifiedCredential, VerifiedCredential,
    VerifyingKey, ENROLL_DOMAIN,
};
use zeroize::Zeroizing;

use crate::types::{
    AuditLog, AuditVerification, Device, DeviceCreated, DeviceList, EnrollRequest, Enrolled, EpochInfo, ErrorBody,
    IssuedKey, KeyRequestBody, NewDevice, PublicParams, Revoked, RotateRequest,
};
use crate::ClientError;

/// Largest answer body read from the authority (keys for 256 attributes are well below this).
const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// Decoded public parameters: the FAME public key and the authority's verifying key, with the epoch.
#[derive(Debug)]
pub struct Params {
    /// The FAME public key.
    pub public_key: PublicKey,
    /// Verifies credentials and audit entries.
    pub verifying_key: VerifyingKey,
    /// The current epoch.
    pub epoch: EpochInfo,
}

/// What a key request returns, opened and checked.
#[derive(Debug)]
pub struct DeviceKeys {
    /// The epoch the key belongs to.
    pub epoch: EpochInfo,
    /// The FAME attribute key (attributes plus `epoch:<N>`).
    pub user_key: UserKey,
    /// The device's credential for this epoch, verified against the authority key.
    pub credential: VerifiedCredential,
}

/// A client of one authority.
#[derive(Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
    admin_token: Option<Zeroizing<String>>,
}

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn unb64(what: &'static str, text: &str) -> Result<Vec<u8>, ClientError> {
    B64.decode(text).map_err(|_| ClientError::Decode(format!("{what} is not base64")))
}

impl Client {
    /// A client for the authority at `base_url` (e.g. `http://127.0.0.1:8740`), with a 30 s timeout.
    pub fn new(base_url: &str) -> Client {
        let agent =
            ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(5)).timeout(Duration::from_secs(30)).build();
        Client { base: base_url.trim_end_matches('/').to_owned(), agent, admin_token: None }
    }

    /// A client that trusts only the CA certificates in `ca_pem` for `https://` URLs (a private authority CA).
    ///
    /// # Errors
    /// [`ClientError::Crypto`] if the PEM holds no usable certificate.
    pub fn with_ca_pem(base_url: &str, ca_pem: &[u8]) -> Result<Client, ClientError> {
        use rustls_pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|_| ClientError::Crypto("CA file is not PEM".into()))?;
            roots.add(cert).map_err(|e| ClientError::Crypto(format!("CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(ClientError::Crypto("CA file holds no certificate".into()));
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Crypto(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .tls_config(std::sync::Arc::new(tls))
            .build();
        Ok(Client { base: base_url.trim_end_matches('/').to_owned(), agent, admin_token: None })
    }

    /// The same client, authenticating administrative calls with `token`.
    pub fn with_admin_token(mut self, token: &str) -> Client {
        self.admin_token = Some(Zeroizing::new(token.trim().to_owned()));
        self
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let mut request = self.agent.request(method, &format!("{}{}", self.base, path));
        if let Some(token) = &self.admin_token {
            request = request.set("Authorization", &format!("Bearer {}", token.as_str()));
        }
        request
    }

    fn finish<T: DeserializeOwned>(result: Result<ureq::Response, ureq::Error>) -> Result<T, ClientError> {
        match result {
            Ok(response) => read_json(response),
            Err(ureq::Error::Status(status, response)) => {
                let body: Result<ErrorBody, _> = read_json(response);
                Err(match body {
                    Ok(body) => ClientError::Http { status, code: body.error.code, message: body.error.message },
                    Err(_) => ClientError::Http {
                        status,
                        code: "unknown".into(),
                        message: "the authority answered with an error and no error body".into(),
                    },
                })
            }
            Err(ureq::Error::Transport(transport)) => Err(ClientError::Transport(transport.to_string())),
        }
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        Self::finish(self.request("GET", path).call())
    }

    fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        Self::finish(self.request("POST", path).send_json(body))
    }

    /// `GET /v1/params`, decoded.
    ///
    /// # Errors
    /// [`ClientError`] for transport, HTTP and decoding failures.
    pub fn params(&self) -> Result<Params, ClientError> {
        let raw: PublicParams = self.get("/v1/params")?;
        let public_key = PublicKey::from_bytes(&unb64("public key", &raw.public_key)?)
            .map_err(|e| ClientError::Decode(format!("public key: {e}")))?;
        let vk: [u8; 32] = unb64("verifying key", &raw.verifying_key)?
            .try_into()
            .map_err(|_| ClientError::Decode("verifying key is not 32 bytes".into()))?;
        let verifying_key =
            VerifyingKey::from_bytes(&vk).map_err(|e| ClientError::Decode(format!("verifying key: {e}")))?;
        Ok(Params { public_key, verifying_key, epoch: raw.epoch })
    }

    /// `GET /v1/epoch`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn epoch(&self) -> Result<EpochInfo, ClientError> {
        self.get("/v1/epoch")
    }

    /// Admin: register a device.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn add_device(&self, device: &NewDevice) -> Result<DeviceCreated, ClientError> {
        self.post("/v1/devices", device)
    }

    /// Admin: every device.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn list_devices(&self) -> Result<DeviceList, ClientError> {
        self.get("/v1/devices")
    }

    /// Admin: one device.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn show_device(&self, device_id: &str) -> Result<Device, ClientError> {
        self.get(&format!("/v1/devices/{}", path_segment(device_id)?))
    }

    /// Admin: revoke a device (and, by default, advance the epoch).
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn revoke_device(&self, device_id: &str) -> Result<Revoked, ClientError> {
        self.post(&format!("/v1/devices/{}/revoke", path_segment(device_id)?), &serde_json::json!({}))
    }

    /// Admin: advance the epoch now.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn rotate_epoch(&self, reason: Option<String>) -> Result<EpochInfo, ClientError> {
        self.post("/v1/epoch/rotate", &RotateRequest { reason })
    }

    /// Admin: the last `limit` audit entries.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn audit(&self, limit: u32) -> Result<AuditLog, ClientError> {
        self.get(&format!("/v1/audit?limit={limit}"))
    }

    /// Admin: check the audit chain.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn audit_verify(&self) -> Result<AuditVerification, ClientError> {
        self.get("/v1/audit/verify")
    }

    /// Device: enroll with a one-time token, proving possession of `device_key`; returns the verified credential.
    ///
    /// # Errors
    /// [`ClientError`]; a credential that does not verify against the authority key is [`ClientError::Decode`].
    pub fn enroll(&self, token: &str, device_key: &SigningKey) -> Result<VerifiedCredential, ClientError> {
        let params = self.params()?;
        let public = device_key.verifying_key();
        let signature = device_key.sign(ENROLL_DOMAIN, &enrollment_signing_bytes(token, &public));
        let body =
            EnrollRequest { token: token.to_owned(), device_key: b64(&public.to_bytes()), signature: b64(&signature) };
        let enrolled: Enrolled = self.post("/v1/enroll", &body)?;
        verify_credential(&enrolled.credential, &params.verifying_key)
    }

    /// Device: fetch the attribute key for the current epoch, sealed to a fresh ephemeral key, and open it.
    ///
    /// # Errors
    /// [`ClientError`]; a key or credential that does not open, decode or verify is [`ClientError::Decode`].
    pub fn request_key<R: RngCore + CryptoRng>(
        &self,
        params: &Params,
        device_id: &DeviceId,
        device_key: &SigningKey,
        rng: &mut R,
    ) -> Result<DeviceKeys, ClientError> {
        let reply = ReplySecret::generate(rng);
        let mut nonce = [0u8; 16];
        rng.try_fill_bytes(&mut nonce).map_err(|_| ClientError::Crypto("random number generator failed".into()))?;
        let request =
            KeyRequest { device_id: device_id.clone(), timestamp: now_unix(), nonce, reply_key: reply.public() };
        let signature = request.sign(device_key);
        let body = KeyRequestBody {
            device_id: device_id.as_str().to_owned(),
            timestamp: request.timestamp,
            nonce: b64(&nonce),
            reply_key: b64(&request.reply_key),
            signature: b64(&signature),
        };
        let issued: IssuedKey = self.post("/v1/keys", &body)?;
        let sealed = unb64("sealed key", &issued.sealed_key)?;
        let key_bytes = reply
            .open(&request.signing_bytes(), &sealed)
            .map_err(|e| ClientError::Decode(format!("sealed key: {e}")))?;
        let user_key = UserKey::from_bytes(&key_bytes).map_err(|e| ClientError::Decode(format!("user key: {e}")))?;
        let credential = verify_credential(&issued.credential, &params.verifying_key)?;
        Ok(DeviceKeys { epoch: issued.epoch, user_key, credential })
    }

    /// Sends a prepared key request as is (tests use this to replay one).
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn post_key_request(&self, body: &KeyRequestBody) -> Result<IssuedKey, ClientError> {
        self.post("/v1/keys", body)
    }
}

fn verify_credential(b64_text: &str, authority: &VerifyingKey) -> Result<VerifiedCredential, ClientError> {
    let bytes = unb64("credential", b64_text)?;
    UnverifiedCredential::from_bytes(&bytes)
        .and_then(|c| c.verify(authority, now_unix()))
        .map_err(|e| ClientError::Decode(format!("credential: {e}")))
}

fn path_segment(device_id: &str) -> Result<&str, ClientError> {
    DeviceId::new(device_id).map_err(|e| ClientError::Decode(format!("device id: {e}")))?;
    Ok(device_id)
}

fn read_json<T: DeserializeOwned>(response: ureq::Response) -> Result<T, ClientError> {
    use std::io::Read as _;
    let mut body = Vec::new();
    response
        .into_reader()
        .take(MAX_RESPONSE_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    if body.len() as u64 > MAX_RESPONSE_BYTES {
        return Err(ClientError::Decode("answer too large".into()));
    }
    serde_json::from_slice(&body).map_err(|e| ClientError::Decode(format!("answer is not the expected JSON: {e}")))
}
