//! Fixtures with real crypto: an authority key, FAME parameters, credentials and CONNECT tokens minted with
//! `smqtt-wire`, device stores written file by file (as `smqtt enroll` writes them), Argon2 password hashes.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use smqtt_abe::{AttributeSet, MasterKey, Policy, PublicKey};
use smqtt_gate::Gate;
use smqtt_session::{Opener, Sealer, SessionPolicy};
use smqtt_wire::{ConnectToken, CredentialBody, DeviceId, SigningKey, TopicFilter};

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub authority: SigningKey,
    pub public_key: Arc<PublicKey>,
    pub master_key: MasterKey,
}

/// A device: its key and credential.
pub struct Device {
    pub id: String,
    pub key: SigningKey,
    pub credential: Vec<u8>,
}

impl Device {
    pub fn token(&self, client_id: &str) -> String {
        ok(ConnectToken::create(&self.key, &self.credential, client_id, now()))
    }

    /// A sealer as the SDK uses it.
    pub fn sealer(&self, fixture: &Fixture, epoch: u64) -> Sealer {
        self.sealer_with(fixture, epoch, SessionPolicy::default())
    }

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

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn credential_with(
        &self,
        id: &str,
        key: &SigningKey,
        publish: &[&str],
        epoch: u64,
        window: (u64, u64),
    ) -> Vec<u8> {
        ok(CredentialBody {
            device_id: ok(DeviceId::new(id)),
            device_key: key.verifying_key(),
            attributes: ok(AttributeSet::parse("role:sensor")),
            publish: publish.iter().map(|f| ok(TopicFilter::new(f))).collect(),
            epoch,
            not_before: window.0,
            not_after: window.1,
        }
        .sign(&self.authority))
    }

    pub fn device(&self, id: &str, publish: &[&str]) -> Device {
        self.device_at(id, publish, 1)
    }

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
        let credential = ok(CredentialBody {
            device_id: ok(DeviceId::new(id)),
            device_key: key.verifying_key(),
            attributes: ok(AttributeSet::parse(attributes)),
            publish: publish.iter().map(|f| ok(TopicFilter::new(f))).collect(),
            epoch,
            not_before: now() - 60,
            not_after: now() + 3600,
        }
        .sign(&self.authority));
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

/// An Argon2id PHC string for `password` (cheap parameters: tests only).
pub fn password_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher as _, SaltString};
    let params = ok(argon2::Params::new(1024, 1, 1, None));
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = ok(SaltString::encode_b64(b"smqtt-test-salt!"));
    ok(argon.hash_password(password.as_bytes(), &salt)).to_string()
}

pub fn policy(text: &str) -> Policy {
    ok(Policy::parse(text))
}
