//! What the authority does, independent of HTTP: the API handlers are thin wrappers over [`Authority`].

use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine as _;
use rand_core::{CryptoRng, OsRng, RngCore};
use sha2::{Digest, Sha256};
use smqtt_abe::{Attribute, AttributeSet, KeyAttribute};
use smqtt_authority_api::{
    AuditEntry, Device, DeviceCreated, EnrollRequest, Enrolled, EpochInfo, IssuedKey, KeyRequestBody, NewDevice,
    PublicParams, Revoked,
};
use smqtt_wire::{
    enrollment_signing_bytes, enrollment_token, seal_to, CredentialBody, DeviceId, EpochBody, KeyDelivery, KeyRequest,
    TopicFilter, VerifyingKey, ENROLL_DOMAIN,
};

use crate::audit::{Action, Verification};
use crate::config::{Config, Revocation};
use crate::error::{Error, Result};
use crate::sealed::Secrets;
use crate::store::{DeviceRecord, DeviceStatus, Enrollment, Epoch, Provenance, Store, TokenHash};

/// Most topic filters one device may hold.
const MAX_PUBLISH_FILTERS: usize = 64;
/// Prefix of admin tokens.
const ADMIN_TOKEN_PREFIX: &str = "smqtt-admin-";

/// The authority: its unsealed secrets, its store and its configuration.
pub struct Authority {
    secrets: Secrets,
    signing_key: Arc<smqtt_wire::SigningKey>,
    verifying_key: VerifyingKey,
    store: Arc<dyn Store>,
    config: Config,
    /// The FAME parameter set's id, signed into epoch statements and key deliveries.
    params_id: [u8; 32],
    /// Serialises writes of the statement file, each of the epoch current when it is written.
    statement_file: std::sync::Mutex<()>,
}

impl core::fmt::Debug for Authority {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Authority").field("verifying_key", &self.verifying_key).finish_non_exhaustive()
    }
}

/// The epoch attribute every key of epoch `n` carries and every policy should require.
pub fn epoch_attribute(n: u64) -> String {
    format!("epoch:{n}")
}

fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn new_token<R: RngCore + CryptoRng>(prefix: &str, rng: &mut R) -> Result<String> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    rng.try_fill_bytes(bytes.as_mut()).map_err(Error::rng)?;
    Ok(format!("{prefix}{}", B64URL.encode(bytes.as_ref())))
}

fn decode_fixed<const N: usize>(what: &str, text: &str) -> Result<[u8; N]> {
    let bytes = B64
        .decode(text)
        .map_err(|e| Error::Invalid { message: format!("{what} is not base64"), source: Some(e.into()) })?;
    bytes.try_into().map_err(|_| Error::invalid(format!("{what} must be {N} bytes")))
}

/// Parses an administrator's attribute list, refusing the reserved `epoch` names.
fn device_attributes(text: &str) -> Result<AttributeSet> {
    let set = AttributeSet::parse(text).map_err(|e| Error::invalid_field("attributes", e))?;
    for item in set.iter() {
        let reserved = match &item {
            KeyAttribute::Plain(a) => a.as_bytes() == b"epoch" || a.as_bytes().starts_with(b"epoch:"),
            KeyAttribute::Numeric { name, .. } => name.as_bytes() == b"epoch",
        };
        if reserved {
            return Err(Error::invalid("attributes: `epoch` is reserved for the authority"));
        }
    }
    Ok(set)
}

fn to_api_device(d: &DeviceRecord) -> Device {
    Device {
        device_id: d.id.clone(),
        attributes: d.attributes.clone(),
        publish: d.publish.clone(),
        status: d.status.as_str().to_owned(),
        device_key: d.device_key.map(|k| B64.encode(k)),
        created_at: d.created_at,
        enrolled_at: d.enrolled_at,
        revoked_at: d.revoked_at,
    }
}

impl Authority {
    /// An authority over unsealed `secrets` and `store`.
    pub fn new(secrets: Secrets, store: Arc<dyn Store>, config: Config) -> Authority {
        let signing_key = Arc::new(smqtt_wire::SigningKey::from_bytes(&secrets.signing_key.to_bytes()));
        let verifying_key = signing_key.verifying_key();
        let params_id = *secrets.public_key.id().as_bytes();
        Authority {
            secrets,
            signing_key,
            verifying_key,
            store,
            config,
            params_id,
            statement_file: std::sync::Mutex::new(()),
        }
    }

    /// Unseals the secrets in `config.data_dir` and opens its SQLite database.
    ///
    /// # Errors
    /// [`Error::Unseal`], [`Error::Io`], [`Error::Config`], [`Error::Storage`].
    pub fn open(config: Config) -> Result<Authority> {
        let with = config.unseal_with()?;
        Authority::open_with(config, &with)
    }

    /// Like [`Authority::open`], with the unseal secret given directly.
    ///
    /// # Errors
    /// As [`Authority::open`].
    pub fn open_with(config: Config, with: &crate::sealed::UnsealWith) -> Result<Authority> {
        let sealed_path = config.data_dir.join(crate::SEALED_FILE);
        let bytes = std::fs::read(&sealed_path).map_err(|e| Error::io(&sealed_path, e))?;
        let mut secrets = crate::sealed::unseal(&bytes, with)?;
        let signer = Arc::new(smqtt_wire::SigningKey::from_bytes(&secrets.signing_key.to_bytes()));
        let provenance = if secrets.state_macs { Provenance::HadMacs } else { Provenance::Unrecorded };
        let db = config.data_dir.join(crate::DATABASE_FILE);
        let store = crate::store::SqliteStore::open(&db, Some(signer), provenance)?;
        if !secrets.state_macs {
            // Sealed before the seal recorded it: the database has MACs now (from its start, or upgraded just
            // now, audited), and from here on the seal says so — a database stripped of them is then refused.
            secrets.state_macs = true;
            let sealed = crate::sealed::seal(&secrets, with, &mut OsRng)?;
            crate::files::write_atomic(&sealed_path, &sealed, 0o600)?;
            tracing::info!("the sealed secrets now record that the database has row MACs");
        }
        Ok(Authority::new(secrets, Arc::new(store), config))
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The authority's verifying key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.verifying_key
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The signed statement of `epoch`, made at `now`.
    fn statement(&self, epoch: Epoch, now: u64) -> String {
        EpochBody { epoch: epoch.number, started_at: epoch.started_at, issued_at: now, params_id: self.params_id }
            .sign(&self.signing_key)
    }

    fn epoch_info(&self, epoch: Epoch, now: u64) -> EpochInfo {
        let interval = self.config.epochs.rotation_interval_secs;
        EpochInfo {
            epoch: epoch.number,
            attribute: epoch_attribute(epoch.number),
            started_at: epoch.started_at,
            next_rotation_at: (interval > 0).then(|| epoch.started_at.saturating_add(interval)),
            statement: self.statement(epoch, now),
        }
    }

    /// The current epoch, with its statement signed now.
    ///
    /// # Errors
    /// Storage errors.
    pub fn epoch(&self) -> Result<EpochInfo> {
        Ok(self.epoch_info(self.store.epoch()?, smqtt_wire::UnixTime::now().as_secs()))
    }

    /// Writes the statement of the current epoch to `[epochs] statement_file`, if one is configured, atomically
    /// (temporary file, fsync, rename; mode 0644). `serve` calls it at start; rotations and revocations that
    /// advance the epoch call it after they commit. Returns the path written.
    ///
    /// # Errors
    /// [`Error::Io`]; storage errors.
    pub fn write_statement_file(&self) -> Result<Option<&Path>> {
        let Some(path) = self.config.epochs.statement_file.as_deref() else { return Ok(None) };
        // Under the lock and read afresh: of two concurrent rotations, the one that writes last writes the newer.
        let _guard = self
            .statement_file
            .lock()
            .map_err(|_| Error::Internal { what: "statement lock poisoned", source: None })?;
        let text = self.statement(self.store.epoch()?, smqtt_wire::UnixTime::now().as_secs());
        crate::files::write_statement(path, &text)?;
        Ok(Some(path))
    }

    /// After an epoch change committed: the statement file follows. A failure is logged, not returned — the
    /// change happened, and a failed answer would invite a second rotation.
    fn epoch_changed(&self) {
        if let Err(error) = self.write_statement_file() {
            tracing::error!(%error, "the epoch changed but the statement file could not be written");
        }
    }

    /// Public parameters.
    ///
    /// # Errors
    /// Storage errors.
    pub fn params(&self) -> Result<PublicParams> {
        Ok(PublicParams {
            public_key: B64.encode(self.secrets.public_key.to_bytes()),
            verifying_key: B64.encode(self.verifying_key.to_bytes()),
            epoch: self.epoch()?,
        })
    }

    /// Checks an admin bearer token; returns the audit actor name.
    ///
    /// # Errors
    /// [`Error::Unauthorized`].
    pub fn check_admin(&self, token: &str) -> Result<String> {
        if !token.starts_with(ADMIN_TOKEN_PREFIX) {
            return Err(Error::Unauthorized("admin token required"));
        }
        match self.store.admin_token(&hash_token(token))? {
            Some(id) => Ok(format!("admin:{id}")),
            None => Err(Error::Unauthorized("admin token required")),
        }
    }

    /// Creates an admin token (shown once; only its hash is stored).
    ///
    /// # Errors
    /// [`Error::Rng`], storage and audit errors.
    pub fn create_admin_token<R: RngCore + CryptoRng>(&self, label: &str, rng: &mut R, now: u64) -> Result<String> {
        let token = new_token(ADMIN_TOKEN_PREFIX, rng)?;
        let audit = Action::new("cli", "admin-token.create", "").detail(format!("label={label}"));
        self.store.add_admin_token(&hash_token(&token), label, &audit, now)?;
        Ok(token)
    }

    /// Registers a device and returns its one-time enrollment token.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad id, attributes or topic filter; [`Error::Conflict`] for a taken id.
    pub fn add_device(&self, actor: &str, request: &NewDevice, now: u64) -> Result<DeviceCreated> {
        let id = DeviceId::new(&request.device_id).map_err(|e| Error::invalid_field("device_id", e))?;
        let attributes = device_attributes(&request.attributes)?;
        if request.publish.len() > MAX_PUBLISH_FILTERS {
            return Err(Error::invalid(format!("publish: at most {MAX_PUBLISH_FILTERS} topic filters")));
        }
        let publish = request
            .publish
            .iter()
            .map(|f| TopicFilter::new(f).map(|f| f.as_str().to_owned()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::invalid_field("publish", e))?;
        let ttl = request.token_ttl_secs.unwrap_or(self.config.enrollment.token_ttl_secs);
        if ttl == 0 || ttl > 30 * 86_400 {
            return Err(Error::invalid("token_ttl_secs must be between 1 and 2592000"));
        }
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        OsRng.try_fill_bytes(secret.as_mut()).map_err(Error::rng)?;
        // Pins the authority key, so that the device can check every later answer against it.
        let token = enrollment_token(&secret, &self.verifying_key);
        let record = DeviceRecord {
            id: id.as_str().to_owned(),
            attributes: attributes.to_string(),
            publish,
            status: DeviceStatus::Pending,
            device_key: None,
            created_at: now,
            enrolled_at: None,
            revoked_at: None,
        };
        let expires_at = now.saturating_add(ttl);
        let audit = Action::new(actor, "device.add", id.as_str())
            .detail(format!("attributes=[{}] publish={:?}", record.attributes, record.publish));
        self.store.add_device(&record, TokenHash { hash: hash_token(&token), expires_at }, &audit, now)?;
        Ok(DeviceCreated { device: to_api_device(&record), enrollment_token: token, token_expires_at: expires_at })
    }

    /// One device.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn device(&self, id: &str) -> Result<Device> {
        self.store.device(id)?.as_ref().map(to_api_device).ok_or(Error::NotFound("device"))
    }

    /// Every device.
    ///
    /// # Errors
    /// Storage errors.
    pub fn devices(&self) -> Result<Vec<Device>> {
        Ok(self.store.devices()?.iter().map(to_api_device).collect())
    }

    /// Revokes a device; advances the epoch unless the config defers it to the next rotation.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Conflict`].
    pub fn revoke(&self, actor: &str, id: &str, now: u64) -> Result<Revoked> {
        let advance = self.config.epochs.revocation == Revocation::Immediate;
        let audit = Action::new(actor, "device.revoke", id).detail(format!("advance_epoch={advance}"));
        let (device, epoch) = self.store.revoke(id, advance, &audit, now)?;
        if advance {
            self.epoch_changed();
        }
        Ok(Revoked { device: to_api_device(&device), epoch: self.epoch_info(epoch, now), epoch_advanced: advance })
    }

    /// Advances the epoch.
    ///
    /// # Errors
    /// Storage and audit errors.
    pub fn rotate(&self, actor: &str, reason: Option<&str>, now: u64) -> Result<EpochInfo> {
        let reason = reason.unwrap_or("manual");
        if reason.len() > 256 {
            return Err(Error::invalid("reason: at most 256 bytes"));
        }
        let audit = Action::new(actor, "epoch.rotate", "").detail(format!("reason={reason}"));
        let epoch = self.store.rotate(&audit, now)?;
        self.epoch_changed();
        Ok(self.epoch_info(epoch, now))
    }

    /// Rotates if the periodic interval has passed; returns the new epoch if it did.
    ///
    /// # Errors
    /// Storage and audit errors.
    pub fn rotate_if_due(&self, now: u64) -> Result<Option<EpochInfo>> {
        let interval = self.config.epochs.rotation_interval_secs;
        let epoch = self.store.epoch()?;
        if interval == 0 || now < epoch.started_at.saturating_add(interval) {
            return Ok(None);
        }
        self.rotate("scheduler", Some("periodic"), now).map(Some)
    }

    fn credential(&self, device: &DeviceRecord, epoch: Epoch, now: u64) -> Result<Vec<u8>> {
        let key = device.device_key.ok_or(Error::NotEnrolled)?;
        let body = CredentialBody {
            device_id: DeviceId::new(&device.id).map_err(|e| Error::stored_value("stored device id", e))?,
            device_key: VerifyingKey::from_bytes(&key).map_err(|e| Error::stored_value("stored device key", e))?,
            attributes: AttributeSet::parse(&device.attributes)
                .map_err(|e| Error::stored_value("stored attributes", e))?,
            publish: device
                .publish
                .iter()
                .map(|f| TopicFilter::new(f))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| Error::stored_value("stored topic filter", e))?,
            epoch: epoch.number,
            not_before: now.saturating_sub(self.config.limits.clock_skew_secs),
            not_after: now.saturating_add(self.config.credentials.lifetime_secs),
        };
        body.sign(&self.signing_key).map_err(Error::crypto)
    }

    /// Redeems an enrollment token for a device key (proof of possession required) and returns the credential.
    ///
    /// # Errors
    /// [`Error::Invalid`] for malformed fields, [`Error::Unauthorized`] for a bad signature,
    /// [`Error::TokenInvalid`] for an unknown, used or expired token.
    pub fn enroll(&self, request: &EnrollRequest, now: u64) -> Result<Enrolled> {
        if request.token.len() > 128 {
            return Err(Error::TokenInvalid);
        }
        let key_bytes: [u8; 32] = decode_fixed("device_key", &request.device_key)?;
        let signature: [u8; 64] = decode_fixed("signature", &request.signature)?;
        let device_key = VerifyingKey::from_bytes(&key_bytes).map_err(|e| Error::invalid_field("device_key", e))?;
        device_key
            .verify(ENROLL_DOMAIN, &enrollment_signing_bytes(&request.token, &device_key), &signature)
            .map_err(|_| Error::Unauthorized("enrollment signature does not verify"))?;
        let audit = |d: &DeviceRecord, retry: bool| {
            let action = if retry { "device.enroll.retry" } else { "device.enroll" };
            Action::new(format!("device:{}", d.id), action, d.id.clone())
                .detail(format!("device_key={}", device_key.fingerprint()))
        };
        // The epoch is the one read in the enrollment's transaction.
        let Enrollment { device, epoch, .. } =
            self.store.enroll(&hash_token(&request.token), &key_bytes, &audit, now)?;
        let credential = self.credential(&device, epoch, now)?;
        Ok(Enrolled { device_id: device.id, credential: B64.encode(credential), epoch: self.epoch_info(epoch, now) })
    }

    /// Issues the device's attribute key for the current epoch, sealed to the request's reply key.
    ///
    /// # Errors
    /// [`Error::Invalid`], [`Error::Unauthorized`] (unknown device or bad signature), [`Error::Stale`],
    /// [`Error::Replay`], [`Error::Revoked`].
    pub fn issue_key(&self, request: &KeyRequestBody, now: u64) -> Result<IssuedKey> {
        let device_id = DeviceId::new(&request.device_id).map_err(|e| Error::invalid_field("device_id", e))?;
        let nonce: [u8; 16] = decode_fixed("nonce", &request.nonce)?;
        let reply_key: [u8; 32] = decode_fixed("reply_key", &request.reply_key)?;
        let signature: [u8; 64] = decode_fixed("signature", &request.signature)?;
        let unauthorized = || Error::Unauthorized("unknown device or bad signature");
        let device = self.store.device(device_id.as_str())?.ok_or_else(unauthorized)?;
        let device_key_bytes = device.device_key.ok_or_else(unauthorized)?;
        let device_key =
            VerifyingKey::from_bytes(&device_key_bytes).map_err(|e| Error::stored_value("device key", e))?;
        let signed = KeyRequest { device_id: device_id.clone(), timestamp: request.timestamp, nonce, reply_key };
        signed.verify(&device_key, &signature).map_err(|_| unauthorized())?;
        if device.status == DeviceStatus::Revoked {
            return Err(Error::Revoked);
        }
        let skew = self.config.limits.clock_skew_secs;
        if request.timestamp.abs_diff(now) > skew {
            return Err(Error::Stale);
        }
        // One transaction checks the device again (not revoked, same key), reads the epoch, uses the nonce and
        // writes the audit entry: the key is never handed out unaudited, and never for an epoch at or after the
        // device's revocation (a revocation commits before this — refused — or after — an older epoch).
        let audit = |d: &DeviceRecord, epoch: Epoch| {
            Action::new(format!("device:{}", d.id), "key.issue", d.id.clone()).detail(format!("epoch={}", epoch.number))
        };
        let forget_before = now.saturating_sub(2 * skew + 1);
        let (device, epoch) =
            self.store.begin_key_issue(device_id.as_str(), &device_key_bytes, &nonce, &audit, now, forget_before)?;
        let mut items: Vec<KeyAttribute> = AttributeSet::parse(&device.attributes)
            .map_err(|e| Error::stored_value("stored attributes", e))?
            .iter()
            .collect();
        let epoch_attr = Attribute::new(epoch_attribute(epoch.number)).map_err(Error::crypto)?;
        items.push(KeyAttribute::Plain(epoch_attr));
        let attributes = AttributeSet::new(items).map_err(|e| Error::invalid_field("attributes", e))?;
        let user_key =
            self.secrets.master_key.keygen(&self.secrets.public_key, &attributes, &mut OsRng).map_err(Error::crypto)?;
        let sealed = seal_to(&reply_key, &signed.signing_bytes(), &user_key.to_bytes(), &mut OsRng)
            .map_err(|e| Error::invalid_field("reply_key", e))?;
        let credential = self.credential(&device, epoch, now)?;
        let delivery = KeyDelivery::new(&signed, epoch.number, &self.params_id, &sealed, &credential);
        Ok(IssuedKey {
            epoch: self.epoch_info(epoch, now),
            sealed_key: B64.encode(&sealed),
            credential: B64.encode(&credential),
            delivery_signature: B64.encode(delivery.sign(&self.signing_key)),
        })
    }

    /// The newest audit entries.
    ///
    /// # Errors
    /// Storage errors.
    pub fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        Ok(self
            .store
            .audit_entries(limit.min(10_000))?
            .into_iter()
            .map(|e| AuditEntry {
                seq: e.seq,
                at: e.at,
                actor: e.actor,
                action: e.action,
                subject: e.subject,
                detail: e.detail,
                hash: e.hash.iter().map(|b| format!("{b:02x}")).collect(),
            })
            .collect())
    }

    /// Verifies the audit chain.
    ///
    /// # Errors
    /// Storage errors.
    pub fn audit_verify(&self) -> Result<Verification> {
        self.store.audit_verify(&self.verifying_key)
    }
}

/// Creates a new authority in `data_dir`: FAME parameters, signing key, sealed file, public files, database.
///
/// # Errors
/// [`Error::AlreadyExists`] if any of its files exist; I/O, RNG and storage errors.
pub fn init<R: RngCore + CryptoRng>(
    data_dir: &Path,
    with: &crate::sealed::UnsealWith,
    rng: &mut R,
    now: u64,
) -> Result<VerifyingKey> {
    use std::io::Write as _;
    for name in [crate::SEALED_FILE, crate::DATABASE_FILE, crate::PUBLIC_KEY_FILE, crate::VERIFYING_KEY_FILE] {
        let path = data_dir.join(name);
        if path.exists() {
            return Err(Error::AlreadyExists(path.display().to_string()));
        }
    }
    crate::files::create_private_dir(data_dir)?;
    let (public_key, master_key) = smqtt_abe::setup(rng).map_err(Error::rng_in)?;
    let signing_key = smqtt_wire::SigningKey::generate(rng);
    let verifying_key = signing_key.verifying_key();
    // The seal records from the start that the database has row MACs.
    let secrets = Secrets { public_key, master_key, signing_key, state_macs: true };
    let sealed = crate::sealed::seal(&secrets, with, rng)?;
    crate::files::write_new(&data_dir.join(crate::SEALED_FILE), &sealed, 0o600)?;
    crate::files::write_new(&data_dir.join(crate::PUBLIC_KEY_FILE), &secrets.public_key.to_bytes(), 0o644)?;
    let mut vk_text = Vec::new();
    let _ = writeln!(vk_text, "{}", B64.encode(verifying_key.to_bytes()));
    crate::files::write_new(&data_dir.join(crate::VERIFYING_KEY_FILE), &vk_text, 0o644)?;
    let signer = Arc::new(smqtt_wire::SigningKey::from_bytes(&secrets.signing_key.to_bytes()));
    let db_path = data_dir.join(crate::DATABASE_FILE);
    let store = crate::store::SqliteStore::open(&db_path, Some(signer), Provenance::New)?;
    crate::files::restrict(&db_path, 0o600)?;
    // `initialise` adds the marker that this database has row MACs from its start.
    store.initialise(
        &Action::new("cli", "authority.init", "").detail(format!("verifying_key={}", verifying_key.fingerprint())),
        now,
    )?;
    Ok(verifying_key)
}
