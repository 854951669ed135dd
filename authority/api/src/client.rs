//! A blocking client for the authority's HTTP API, for administrators (the CLI) and devices (the SDK).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand_core::{CryptoRng, RngCore};
use serde::de::DeserializeOwned;
use serde::Serialize;
use smqtt_abe::{Policy, PublicKey, UserKey};
use smqtt_wire::{
    enrollment_signing_bytes, enrollment_token_authority, DeviceId, EpochStatement, KeyDelivery, KeyRequest,
    ReplySecret, SigningKey, UnverifiedCredential, VerifiedCredential, VerifiedEpoch, VerifyingKey, ENROLL_DOMAIN,
};
use zeroize::Zeroizing;

use crate::types::{
    AuditLog, AuditVerification, Device, DeviceCreated, DeviceList, EnrollRequest, Enrolled, EpochInfo, ErrorBody,
    IssuedKey, KeyRequestBody, NewDevice, PublicParams, Revoked, RotateRequest,
};
use crate::{Cause, ClientError, RngFailure};

/// Largest answer body read from the authority (keys for 256 attributes are well below this).
const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// Decoded public parameters: the FAME public key and the authority's verifying key, with the epoch. The
/// epoch statement verified under `verifying_key` and names `public_key`'s parameter set; whether
/// `verifying_key` is the right authority is the caller's question ([`Client::params_pinned`] answers it).
#[derive(Debug)]
pub struct Params {
    /// The FAME public key.
    pub public_key: PublicKey,
    /// Verifies credentials and audit entries.
    pub verifying_key: VerifyingKey,
    /// The current epoch.
    pub epoch: EpochInfo,
    /// The current epoch as verified by `verifying_key`.
    pub statement: VerifiedEpoch,
}

impl Params {
    /// These parameters as the trust a device pins.
    pub fn pinned(&self) -> Pinned<'_> {
        Pinned { verifying_key: &self.verifying_key, public_key: &self.public_key }
    }
}

/// What a device trusts: the authority key it pinned at enrollment and the FAME public key that authority
/// vouched for then. Every later answer is checked against these, never against what the network offers.
#[derive(Clone, Copy, Debug)]
pub struct Pinned<'a> {
    /// The pinned authority verifying key.
    pub verifying_key: &'a VerifyingKey,
    /// The pinned FAME public key.
    pub public_key: &'a PublicKey,
}

/// What enrollment returns: the authority's parameters (checked against the pinned key) and the credential.
#[derive(Debug)]
pub struct Enrollment {
    /// The authority's parameters, verified against the pinned authority key.
    pub params: Params,
    /// The device's first credential.
    pub credential: VerifiedCredential,
}

/// What a key request returns, opened and checked.
#[derive(Debug)]
pub struct DeviceKeys {
    /// The epoch the key belongs to.
    pub epoch: EpochInfo,
    /// The same epoch, verified under the pinned authority key.
    pub statement: VerifiedEpoch,
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

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn unb64(what: &'static str, text: &str) -> Result<Vec<u8>, ClientError> {
    B64.decode(text)
        .map_err(|e| ClientError::Decode { message: format!("{what} is not base64"), source: Some(Cause::new(e)) })
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
    /// [`ClientError::Tls`] if the PEM holds no usable certificate.
    pub fn with_ca_pem(base_url: &str, ca_pem: &[u8]) -> Result<Client, ClientError> {
        use rustls_pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert
                .map_err(|e| ClientError::Tls { message: "CA file is not PEM".into(), source: Some(Cause::new(e)) })?;
            roots.add(cert).map_err(|e| ClientError::Tls {
                message: format!("CA certificate: {e}"),
                source: Some(Cause::new(e)),
            })?;
        }
        if roots.is_empty() {
            return Err(ClientError::Tls { message: "CA file holds no certificate".into(), source: None });
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls { message: e.to_string(), source: Some(Cause::new(e)) })?
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
            Err(ureq::Error::Transport(transport)) => Err(ClientError::transport(transport)),
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
            .map_err(|e| ClientError::decode_of("public key", e))?;
        let vk: [u8; 32] = unb64("verifying key", &raw.verifying_key)?
            .try_into()
            .map_err(|_| ClientError::decode("verifying key is not 32 bytes"))?;
        let verifying_key = VerifyingKey::from_bytes(&vk).map_err(|e| ClientError::decode_of("verifying key", e))?;
        let statement = verify_epoch(&raw.epoch, &verifying_key, &public_key)?;
        Ok(Params { public_key, verifying_key, epoch: raw.epoch, statement })
    }

    /// `GET /v1/params`, refused unless the authority's verifying key is `pinned` (and its epoch statement,
    /// signed by that key, names the FAME public key it serves).
    ///
    /// # Errors
    /// [`ClientError::AuthorityKeyMismatch`] for another authority key; as [`params`](Self::params).
    pub fn params_pinned(&self, pinned: &VerifyingKey) -> Result<Params, ClientError> {
        let params = self.params()?;
        if params.verifying_key != *pinned {
            return Err(ClientError::AuthorityKeyMismatch {
                pinned: pinned.fingerprint(),
                offered: params.verifying_key.fingerprint(),
            });
        }
        Ok(params)
    }

    /// `GET /v1/epoch` (unverified: see [`epoch_verified`](Self::epoch_verified)).
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn epoch(&self) -> Result<EpochInfo, ClientError> {
        self.get("/v1/epoch")
    }

    /// `GET /v1/epoch`, its statement verified against the pinned authority key and parameter set.
    ///
    /// # Errors
    /// [`ClientError::BadAuthoritySignature`], [`ClientError::ParamsChanged`]; as [`epoch`](Self::epoch).
    pub fn epoch_verified(&self, pinned: Pinned<'_>) -> Result<VerifiedEpoch, ClientError> {
        verify_epoch(&self.epoch()?, pinned.verifying_key, pinned.public_key)
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
    /// As [`enroll_pinned`](Self::enroll_pinned).
    pub fn enroll(&self, token: &str, device_key: &SigningKey) -> Result<VerifiedCredential, ClientError> {
        self.enroll_pinned(token, device_key, None).map(|e| e.credential)
    }

    /// Device: enroll with a one-time token, refusing any authority but the one the token pins (or `pinned`,
    /// given out of band; if both are present they must agree). Returns the verified parameters and credential.
    ///
    /// # Errors
    /// [`ClientError::NoPinnedAuthority`] for a token that pins no key when `pinned` is `None`;
    /// [`ClientError::AuthorityKeyMismatch`]; [`ClientError`] for transport and HTTP failures; a credential
    /// that does not verify against the pinned key is [`ClientError::BadAuthoritySignature`].
    pub fn enroll_pinned(
        &self,
        token: &str,
        device_key: &SigningKey,
        pinned: Option<&VerifyingKey>,
    ) -> Result<Enrollment, ClientError> {
        let from_token = enrollment_token_authority(token).ok();
        let pin = match (from_token, pinned) {
            (Some(a), Some(b)) if a != *b => {
                return Err(ClientError::AuthorityKeyMismatch { pinned: b.fingerprint(), offered: a.fingerprint() })
            }
            (Some(key), _) => key,
            (None, Some(key)) => *key,
            (None, None) => return Err(ClientError::NoPinnedAuthority),
        };
        let params = self.params_pinned(&pin)?;
        let public = device_key.verifying_key();
        let signature = device_key.sign(ENROLL_DOMAIN, &enrollment_signing_bytes(token, &public));
        let body =
            EnrollRequest { token: token.to_owned(), device_key: b64(&public.to_bytes()), signature: b64(&signature) };
        let enrolled: Enrolled = self.post("/v1/enroll", &body)?;
        let credential = verify_credential(&enrolled.credential, &pin)?;
        if credential.body().device_key != public {
            return Err(ClientError::BadAuthoritySignature("credential for another device key"));
        }
        Ok(Enrollment { params, credential })
    }

    /// Device: [`request_key_pinned`](Self::request_key_pinned) trusting `params` as pinned.
    ///
    /// # Errors
    /// As [`request_key_pinned`](Self::request_key_pinned).
    pub fn request_key<R: RngCore + CryptoRng>(
        &self,
        params: &Params,
        device_id: &DeviceId,
        device_key: &SigningKey,
        rng: &mut R,
    ) -> Result<DeviceKeys, ClientError> {
        self.request_key_pinned(params.pinned(), device_id, device_key, rng)
    }

    /// Device: fetch the attribute key for the current epoch, sealed to a fresh ephemeral key, and open it —
    /// only after the authority's signature over the delivery (request, epoch, parameter set, sealed key,
    /// credential) verified under the pinned key; then the key must decapsulate a capsule made under the pinned
    /// FAME public key for its epoch before it is returned.
    ///
    /// # Errors
    /// [`ClientError::BadAuthoritySignature`] for a delivery, epoch statement or credential the pinned key did
    /// not sign; [`ClientError::ParamsChanged`] for a key of another FAME parameter set; [`ClientError::KeyMismatch`]
    /// for a key that fails the trial decapsulation; [`ClientError`] for transport and HTTP failures.
    pub fn request_key_pinned<R: RngCore + CryptoRng>(
        &self,
        pinned: Pinned<'_>,
        device_id: &DeviceId,
        device_key: &SigningKey,
        rng: &mut R,
    ) -> Result<DeviceKeys, ClientError> {
        let reply = ReplySecret::generate(rng);
        let mut nonce = [0u8; 16];
        rng.try_fill_bytes(&mut nonce).map_err(|e| ClientError::Crypto {
            message: "random number generator failed".into(),
            source: Some(Cause::new(RngFailure(e))),
        })?;
        let request = KeyRequest {
            device_id: device_id.clone(),
            timestamp: smqtt_wire::UnixTime::now().as_secs(),
            nonce,
            reply_key: reply.public(),
        };
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
        let credential_bytes = unb64("credential", &issued.credential)?;
        let signature: [u8; 64] = unb64("delivery signature", &issued.delivery_signature)?
            .try_into()
            .map_err(|_| ClientError::decode("delivery signature is not 64 bytes"))?;
        let params_id = *pinned.public_key.id().as_bytes();
        KeyDelivery::new(&request, issued.epoch.epoch, &params_id, &sealed, &credential_bytes)
            .verify(pinned.verifying_key, &signature)
            .map_err(|_| ClientError::BadAuthoritySignature("key delivery"))?;
        let statement = verify_epoch(&issued.epoch, pinned.verifying_key, pinned.public_key)?;
        let credential = verify_credential(&issued.credential, pinned.verifying_key)?;
        if credential.body().device_id != *device_id || credential.body().device_key != device_key.verifying_key() {
            return Err(ClientError::BadAuthoritySignature("credential for another device"));
        }
        if credential.body().epoch != statement.epoch() {
            return Err(ClientError::decode("credential and key are of different epochs"));
        }
        let key_bytes =
            reply.open(&request.signing_bytes(), &sealed).map_err(|e| ClientError::decode_of("sealed key", e))?;
        let user_key = UserKey::from_bytes(&key_bytes).map_err(|e| ClientError::decode_of("user key", e))?;
        if user_key.params_id() != pinned.public_key.id() {
            return Err(ClientError::ParamsChanged);
        }
        check_key_decapsulates(&user_key, pinned.public_key, statement.epoch(), rng)?;
        Ok(DeviceKeys { epoch: issued.epoch, statement, user_key, credential })
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
    let unverified = UnverifiedCredential::from_bytes(&bytes).map_err(|e| ClientError::decode_of("credential", e))?;
    unverified.verify(authority, smqtt_wire::UnixTime::now().as_secs()).map_err(|e| match e {
        smqtt_wire::Error::BadSignature => ClientError::BadAuthoritySignature("credential"),
        other => ClientError::decode_of("credential", other),
    })
}

/// Verifies an epoch's statement under `authority` and requires it to name `public_key`'s parameter set and
/// to agree with the unsigned fields next to it.
fn verify_epoch(
    info: &EpochInfo,
    authority: &VerifyingKey,
    public_key: &PublicKey,
) -> Result<VerifiedEpoch, ClientError> {
    let statement = EpochStatement::parse(&info.statement)
        .map_err(|e| ClientError::decode_of("epoch statement", e))?
        .verify(authority)
        .map_err(|_| ClientError::BadAuthoritySignature("epoch statement"))?;
    if statement.params_id() != public_key.id().as_bytes() {
        return Err(ClientError::ParamsChanged);
    }
    if statement.epoch() != info.epoch || statement.body().started_at != info.started_at {
        return Err(ClientError::decode("epoch fields disagree with their signed statement"));
    }
    Ok(statement)
}

/// The key must open a capsule sealed under the pinned public key for its epoch: a key made under other
/// parameters, or without this epoch's attribute, fails here in the pairing equation, not in a label check.
fn check_key_decapsulates<R: RngCore + CryptoRng>(
    key: &UserKey,
    public_key: &PublicKey,
    epoch: u64,
    rng: &mut R,
) -> Result<(), ClientError> {
    let crypto = |e: smqtt_abe::Error| ClientError::Crypto { message: e.to_string(), source: Some(Cause::new(e)) };
    let policy = Policy::parse(&format!("epoch:{epoch}")).map_err(crypto)?;
    let (sent, capsule) = public_key.encapsulate(&policy, rng).map_err(crypto)?;
    match key.decapsulate(public_key, &capsule) {
        Ok(received) if received == sent => Ok(()),
        _ => Err(ClientError::KeyMismatch),
    }
}

fn path_segment(device_id: &str) -> Result<&str, ClientError> {
    DeviceId::new(device_id).map_err(|e| ClientError::InvalidDeviceId { source: Cause::new(e) })?;
    Ok(device_id)
}

fn read_json<T: DeserializeOwned>(response: ureq::Response) -> Result<T, ClientError> {
    use std::io::Read as _;
    let mut body = Vec::new();
    response.into_reader().take(MAX_RESPONSE_BYTES + 1).read_to_end(&mut body).map_err(ClientError::transport)?;
    if body.len() as u64 > MAX_RESPONSE_BYTES {
        return Err(ClientError::decode("answer too large"));
    }
    serde_json::from_slice(&body).map_err(|e| ClientError::decode_of("answer is not the expected JSON", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use smqtt_abe::AttributeSet;

    fn key_for(master: &smqtt_abe::MasterKey, public: &PublicKey, attributes: &str) -> UserKey {
        let attributes = AttributeSet::parse(attributes).unwrap_or_else(|e| panic!("{e}"));
        master.keygen(public, &attributes, &mut rand_core::OsRng).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The trial decapsulation runs the pairing: a key of the epoch passes; a key without the epoch's attribute,
    /// or one made under other parameters, fails in the math.
    #[test]
    fn only_a_key_of_the_pinned_parameters_and_epoch_passes_the_trial_decapsulation() {
        let mut rng = rand_core::OsRng;
        let (public, master) = smqtt_abe::setup(&mut rng).unwrap_or_else(|e| panic!("{e}"));
        let (other_public, other_master) = smqtt_abe::setup(&mut rng).unwrap_or_else(|e| panic!("{e}"));
        let good = key_for(&master, &public, "role:a, epoch:3");
        assert_eq!(check_key_decapsulates(&good, &public, 3, &mut rng), Ok(()));
        assert_eq!(check_key_decapsulates(&good, &public, 4, &mut rng), Err(ClientError::KeyMismatch));
        let foreign = key_for(&other_master, &other_public, "role:a, epoch:3");
        assert_eq!(check_key_decapsulates(&foreign, &public, 3, &mut rng), Err(ClientError::KeyMismatch));
        // The foreign key relabelled as the pinned parameters' (header: magic 4, version, kind, then the
        // 32-byte parameter id): it decodes, and only the pairing equation (the FO check) tells it apart.
        let mut bytes = foreign.to_bytes();
        bytes[6..38].copy_from_slice(public.id().as_bytes());
        let relabelled = UserKey::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(relabelled.params_id(), public.id());
        assert_eq!(check_key_decapsulates(&relabelled, &public, 3, &mut rng), Err(ClientError::KeyMismatch));
    }

    /// Failures keep the library's error as their cause, read as they always did, and stay `Clone` and `Eq`.
    #[test]
    fn failures_keep_their_cause() {
        use std::error::Error as _;
        let Err(error) = path_segment("not a device id!") else { panic!("accepted") };
        let cause = error.source().and_then(|s| s.downcast_ref::<smqtt_wire::Error>()).expect("the wire error").clone();
        assert_eq!(error.to_string(), format!("unexpected answer from the authority: device id: {cause}"));
        assert_eq!(error.clone(), error);
        assert_eq!(error, ClientError::InvalidDeviceId { source: Cause::new(cause.clone()) });
        assert!(matches!(&error, ClientError::InvalidDeviceId { source } if source.downcast_ref() == Some(&cause)));

        let Err(error) = unb64("credential", "not base64!") else { panic!("decoded") };
        assert_eq!(error.to_string(), "unexpected answer from the authority: credential is not base64");
        assert!(error.source().is_some_and(|s| s.is::<base64::DecodeError>()));

        // Nobody listens on a port just released: the transport's error is the cause.
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a port").port();
        let error = Client::new(&format!("http://127.0.0.1:{port}")).epoch().expect_err("nobody listens");
        let cause = error.source().and_then(|s| s.downcast_ref::<ureq::Transport>()).expect("ureq's error");
        assert_eq!(error.to_string(), format!("cannot reach the authority: {cause}"));
    }

    #[test]
    fn epoch_statements_must_name_the_pinned_parameters_and_agree_with_their_fields() {
        let mut rng = rand_core::OsRng;
        let (public, _) = smqtt_abe::setup(&mut rng).unwrap_or_else(|e| panic!("{e}"));
        let (other, _) = smqtt_abe::setup(&mut rng).unwrap_or_else(|e| panic!("{e}"));
        let authority = SigningKey::from_bytes(&[5; 32]);
        let info = |params: &PublicKey, epoch: u64, by: &SigningKey| EpochInfo {
            epoch,
            attribute: format!("epoch:{epoch}"),
            started_at: 100,
            next_rotation_at: None,
            statement: smqtt_wire::EpochBody {
                epoch: 2,
                started_at: 100,
                issued_at: 101,
                params_id: *params.id().as_bytes(),
            }
            .sign(by),
        };
        let vk = authority.verifying_key();
        assert!(verify_epoch(&info(&public, 2, &authority), &vk, &public).is_ok());
        assert_eq!(verify_epoch(&info(&other, 2, &authority), &vk, &public).err(), Some(ClientError::ParamsChanged));
        assert!(matches!(verify_epoch(&info(&public, 3, &authority), &vk, &public), Err(ClientError::Decode { .. })));
        let impostor = SigningKey::from_bytes(&[6; 32]);
        assert_eq!(
            verify_epoch(&info(&public, 2, &impostor), &vk, &public).err(),
            Some(ClientError::BadAuthoritySignature("epoch statement"))
        );
    }
}
