//! Credentials without an authority process: an authority signing key and FAME parameters made here, device
//! credentials and CONNECT tokens minted with `smqtt-wire`, device stores written file by file (as
//! `smqtt enroll` writes them), signed epoch statements, gates from TOML, and cheap Argon2id hashes for legacy
//! passwords.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use smqtt_abe::{AttributeSet, MasterKey, Policy, PublicKey};
use smqtt_gate::Gate;
use smqtt_session::{Opener, Sealer, SessionPolicy};
use smqtt_wire::{ConnectToken, CredentialBody, DeviceId, SigningKey, TopicFilter};

use crate::now;

/// The value of `r`, or a panic showing its error.
pub fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// An authority of the test's own: its signing key (its `authority.pub` in the fixture's directory, base64 as the
/// authority writes it) and FAME parameters.
pub struct Fixture {
    /// Holds `authority.pub`, gate configurations, stores.
    pub dir: tempfile::TempDir,
    /// The authority's signing key.
    pub authority: SigningKey,
    /// The FAME public parameters.
    pub public_key: Arc<PublicKey>,
    /// The FAME master key (to issue attribute keys).
    pub master_key: MasterKey,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture").field("dir", &self.dir.path()).finish_non_exhaustive()
    }
}

/// A device: its key and credential.
pub struct Device {
    /// The device id.
    pub id: String,
    /// Its signing key.
    pub key: SigningKey,
    /// Its credential, signed by the fixture's authority.
    pub credential: Vec<u8>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Device {
    /// A fresh CONNECT token for `client_id`.
    pub fn token(&self, client_id: &str) -> String {
        ok(ConnectToken::create(&self.key, &self.credential, client_id, now()))
    }

    /// A sealer as the SDK uses it.
    pub fn sealer(&self, fixture: &Fixture, epoch: u64) -> Sealer {
        self.sealer_with(fixture, epoch, SessionPolicy::default())
    }

    /// A sealer with session policy `policy`.
    pub fn sealer_with(&self, fixture: &Fixture, epoch: u64, policy: SessionPolicy) -> Sealer {
        Sealer::new(
            ok(DeviceId::new(&self.id)),
            SigningKey::from_bytes(&self.key.to_bytes()),
            self.credential.clone(),
            fixture.public_key.clone(),
            epoch,
            policy,
        )
    }
}

impl Fixture {
    /// A fresh authority key and FAME parameters.
    pub fn new() -> Fixture {
        let dir = ok(tempfile::tempdir());
        let authority = SigningKey::generate(&mut rand_core::OsRng);
        let (public_key, master_key) = ok(smqtt_abe::setup(&mut rand_core::OsRng));
        // As the authority writes it: base64, one line.
        use base64::Engine as _;
        let text =
            format!("{}\n", base64::engine::general_purpose::STANDARD.encode(authority.verifying_key().to_bytes()));
        ok(std::fs::write(dir.path().join("authority.pub"), text));
        Fixture { dir, authority, public_key: Arc::new(public_key), master_key }
    }

    /// The fixture's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A credential for `id` (attributes `role:sensor`) with `key`, publish rights, epoch and validity window.
    pub fn credential_with(
        &self,
        id: &str,
        key: &SigningKey,
        publish: &[&str],
        epoch: u64,
        window: (u64, u64),
    ) -> Vec<u8> {
        self.credential_for(id, key, "role:sensor", publish, epoch, window)
    }

    /// A credential for `id` with `attributes`.
    pub fn credential_for(
        &self,
        id: &str,
        key: &SigningKey,
        attributes: &str,
        publish: &[&str],
        epoch: u64,
        window: (u64, u64),
    ) -> Vec<u8> {
        ok(CredentialBody {
            device_id: ok(DeviceId::new(id)),
            device_key: key.verifying_key(),
            attributes: ok(AttributeSet::parse(attributes)),
            publish: publish.iter().map(|f| ok(TopicFilter::new(f))).collect(),
            epoch,
            not_before: window.0,
            not_after: window.1,
        }
        .sign(&self.authority))
    }

    /// A device of epoch 1 with publish rights `publish`.
    pub fn device(&self, id: &str, publish: &[&str]) -> Device {
        self.device_at(id, publish, 1)
    }

    /// A device of `epoch`, valid from a minute ago for an hour.
    pub fn device_at(&self, id: &str, publish: &[&str], epoch: u64) -> Device {
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let credential = self.credential_with(id, &key, publish, epoch, (now() - 60, now() + 3600));
        Device { id: id.to_owned(), key, credential }
    }

    /// The authority's signed statement of `epoch`, as `smqtt-authority epoch statement` writes it.
    pub fn epoch_statement(&self, epoch: u64) -> String {
        smqtt_wire::EpochBody {
            epoch,
            started_at: now() - 10,
            issued_at: now(),
            params_id: *self.public_key.id().as_bytes(),
        }
        .sign(&self.authority)
    }

    /// A gate from `toml` (the `[authority]` table is prepended unless `toml` has one).
    pub fn gate(&self, toml: &str) -> Gate {
        ok(self.try_gate(toml))
    }

    /// [`gate`](Self::gate), returning the configuration error.
    pub fn try_gate(&self, toml: &str) -> Result<Gate, smqtt_gate::GateError> {
        let text = if toml.contains("[authority]") {
            toml.to_owned()
        } else {
            format!("[authority]\nverifying_key = \"authority.pub\"\n{toml}")
        };
        Gate::from_toml_str(&text, self.path())
    }

    /// A device store directory (as `smqtt enroll` writes it) for `id` with `attributes` and `publish`.
    pub fn store(&self, id: &str, attributes: &str, publish: &[&str], epoch: u64) -> PathBuf {
        let dir = self.path().join(format!("store-{id}"));
        ok(std::fs::create_dir_all(&dir));
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let credential = self.credential_for(id, &key, attributes, publish, epoch, (now() - 60, now() + 3600));
        let user_key = self.user_key(&format!("{attributes}, epoch:{epoch}"));
        ok(std::fs::write(dir.join("device.id"), id));
        ok(std::fs::write(dir.join("device.key"), key.to_bytes().as_ref()));
        ok(std::fs::write(dir.join("public.key"), self.public_key.to_bytes()));
        ok(std::fs::write(dir.join("authority.pub"), self.authority.verifying_key().to_bytes()));
        ok(std::fs::write(dir.join("user.key"), user_key.to_bytes().as_slice()));
        ok(std::fs::write(dir.join("credential"), credential));
        ok(std::fs::write(dir.join("authority.url"), "http://127.0.0.1:9"));
        dir
    }

    /// An attribute key for `attributes` (give the epoch attribute yourself).
    pub fn user_key(&self, attributes: &str) -> smqtt_abe::UserKey {
        ok(self.master_key.keygen(&self.public_key, &ok(AttributeSet::parse(attributes)), &mut rand_core::OsRng))
    }

    /// A subscriber's opener with `attributes` (plus the epoch attribute).
    pub fn opener(&self, attributes: &str, epoch: u64) -> Opener {
        Opener::new(
            self.public_key.clone(),
            self.user_key(&format!("{attributes}, epoch:{epoch}")),
            self.authority.verifying_key(),
            epoch,
        )
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture::new()
    }
}

/// An Argon2id PHC string for `password` (cheap parameters, a fixed salt: tests only).
pub fn password_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher as _, SaltString};
    let params = ok(argon2::Params::new(1024, 1, 1, None));
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = ok(SaltString::encode_b64(b"smqtt-test-salt!"));
    ok(argon.hash_password(password.as_bytes(), &salt)).to_string()
}

/// A policy from its text.
pub fn policy(text: &str) -> Policy {
    ok(Policy::parse(text))
}

/// A fresh CONNECT token (the MQTT password) for `identity` connecting as `client_id`.
pub fn token(identity: &smqtt_client::Identity, client_id: &str) -> String {
    ok(ConnectToken::create(identity.signing_key(), identity.credential(), client_id, now()))
}

/// A sealer for the identity in the store at `store`, as the SDK would make it (default session policy).
pub fn sealer(store: &Path) -> Sealer {
    let identity = ok(smqtt_client::DeviceStore::at(store).load()).into_parts();
    Sealer::new(
        identity.device_id,
        identity.signing_key,
        identity.credential,
        Arc::new(identity.public_key),
        identity.epoch,
        SessionPolicy::default(),
    )
}
