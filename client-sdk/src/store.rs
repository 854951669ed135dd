//! The device store: one directory (0700) with the device's identity, keys and the authority's public values.
//!
//! ```text
//! device.id        the device id
//! device.key       Ed25519 signing key, 32 bytes (0600)
//! user.key         FAME attribute key, smqtt-abe encoding (0600)
//! credential       the authority-signed credential
//! public.key       FAME public parameters
//! authority.pub    the authority's verifying key, 32 bytes
//! authority.url    where to renew
//! ```
//! Files are replaced atomically (write to a temporary file, fsync, rename), so a crash never leaves half a key.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use smqtt_abe::{PublicKey, UserKey};
use smqtt_authority_api::Client;
use smqtt_wire::{DeviceId, SigningKey, UnverifiedCredential, VerifiedCredential, VerifyingKey};
use zeroize::Zeroizing;

use crate::error::Error;

/// Everything a device needs to publish and subscribe.
pub struct Identity {
    /// The device id.
    pub device_id: DeviceId,
    /// Signs envelopes.
    pub signing_key: SigningKey,
    /// The credential, as signed bytes.
    pub credential: Vec<u8>,
    /// The credential, verified.
    pub verified: VerifiedCredential,
    /// FAME public parameters.
    pub public_key: PublicKey,
    /// The authority's verifying key.
    pub authority_key: VerifyingKey,
    /// This device's attribute key.
    pub user_key: UserKey,
    /// The epoch of `user_key` and `credential`.
    pub epoch: u64,
    /// Where the authority is.
    pub authority_url: String,
}

impl core::fmt::Debug for Identity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Identity")
            .field("device_id", &self.device_id)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

fn store_error(path: &Path, message: impl core::fmt::Display) -> Error {
    Error::Store { path: path.display().to_string(), message: message.to_string() }
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| store_error(&tmp, e))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| store_error(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| store_error(path, e))
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>, Error> {
    let path = dir.join(name);
    let metadata = std::fs::metadata(&path).map_err(|e| store_error(&path, e))?;
    if metadata.len() > 4 * 1024 * 1024 {
        return Err(store_error(&path, "file too large"));
    }
    std::fs::read(&path).map_err(|e| store_error(&path, e))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A device store directory.
#[derive(Clone, Debug)]
pub struct DeviceStore {
    dir: PathBuf,
}

impl DeviceStore {
    /// The store at `dir` (nothing is read yet).
    pub fn at(dir: &Path) -> DeviceStore {
        DeviceStore { dir: dir.to_path_buf() }
    }

    /// Enrolls a new device: makes its Ed25519 key, redeems `token` at the authority, fetches the attribute
    /// key, and writes everything to a new store directory.
    ///
    /// # Errors
    /// [`Error::Store`] if the directory already holds a device or cannot be written; [`Error::Authority`].
    pub fn enroll(dir: &Path, authority_url: &str, token: &str) -> Result<Identity, Error> {
        if dir.join("device.key").exists() {
            return Err(store_error(dir, "already holds an enrolled device; refusing to overwrite it"));
        }
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| store_error(dir, e))?;
        let signing_key = SigningKey::generate(&mut rand_core::OsRng);
        let client = Client::new(authority_url);
        let credential = client.enroll(token, &signing_key).map_err(|e| Error::Authority(e.to_string()))?;
        let device_id = credential.body().device_id.clone();
        write_atomic(&dir.join("device.key"), signing_key.to_bytes().as_ref(), 0o600)?;
        write_atomic(&dir.join("device.id"), device_id.as_str().as_bytes(), 0o644)?;
        write_atomic(&dir.join("authority.url"), authority_url.as_bytes(), 0o644)?;
        DeviceStore::at(dir).renew()
    }

    /// Fetches a fresh attribute key and credential for the authority's current epoch and stores them.
    ///
    /// # Errors
    /// [`Error::Store`], [`Error::Authority`] (e.g. the device was revoked).
    pub fn renew(&self) -> Result<Identity, Error> {
        let url = String::from_utf8(read(&self.dir, "authority.url")?).map_err(|e| store_error(&self.dir, e))?;
        let signing_key = self.signing_key()?;
        let device_id = self.device_id()?;
        let client = Client::new(url.trim());
        let params = client.params().map_err(|e| Error::Authority(e.to_string()))?;
        let keys = client
            .request_key(&params, &device_id, &signing_key, &mut rand_core::OsRng)
            .map_err(|e| Error::Authority(e.to_string()))?;
        write_atomic(&self.dir.join("public.key"), &params.public_key.to_bytes(), 0o644)?;
        write_atomic(&self.dir.join("authority.pub"), &params.verifying_key.to_bytes(), 0o644)?;
        write_atomic(&self.dir.join("user.key"), &keys.user_key.to_bytes(), 0o600)?;
        write_atomic(&self.dir.join("credential"), keys.credential.to_bytes(), 0o644)?;
        self.load()
    }

    /// The authority's current epoch (a public, unauthenticated request to the store's authority).
    ///
    /// # Errors
    /// [`Error::Store`], [`Error::Authority`].
    pub fn authority_epoch(&self) -> Result<u64, Error> {
        let url = String::from_utf8(read(&self.dir, "authority.url")?).map_err(|e| store_error(&self.dir, e))?;
        let info = Client::new(url.trim()).epoch().map_err(|e| Error::Authority(e.to_string()))?;
        Ok(info.epoch)
    }

    fn device_id(&self) -> Result<DeviceId, Error> {
        let text = String::from_utf8(read(&self.dir, "device.id")?).map_err(|e| store_error(&self.dir, e))?;
        DeviceId::new(text.trim()).map_err(|e| store_error(&self.dir.join("device.id"), e))
    }

    fn signing_key(&self) -> Result<SigningKey, Error> {
        let bytes = Zeroizing::new(read(&self.dir, "device.key")?);
        let array: [u8; 32] =
            bytes.as_slice().try_into().map_err(|_| store_error(&self.dir.join("device.key"), "not a 32-byte key"))?;
        let array = Zeroizing::new(array);
        Ok(SigningKey::from_bytes(&array))
    }

    /// Loads the whole identity, checking that the pieces belong together.
    ///
    /// # Errors
    /// [`Error::Store`] for missing, corrupt or inconsistent files.
    pub fn load(&self) -> Result<Identity, Error> {
        let device_id = self.device_id()?;
        let signing_key = self.signing_key()?;
        let public_key = PublicKey::from_bytes(&read(&self.dir, "public.key")?)
            .map_err(|e| store_error(&self.dir.join("public.key"), e))?;
        let vk: [u8; 32] = read(&self.dir, "authority.pub")?
            .try_into()
            .map_err(|_| store_error(&self.dir.join("authority.pub"), "not a 32-byte key"))?;
        let authority_key =
            VerifyingKey::from_bytes(&vk).map_err(|e| store_error(&self.dir.join("authority.pub"), e))?;
        let user_key = UserKey::from_bytes(&Zeroizing::new(read(&self.dir, "user.key")?))
            .map_err(|e| store_error(&self.dir.join("user.key"), e))?;
        let credential = read(&self.dir, "credential")?;
        let verified = UnverifiedCredential::from_bytes(&credential)
            .and_then(|c| c.verify(&authority_key, unix_now()))
            .map_err(|e| store_error(&self.dir.join("credential"), e))?;
        if verified.body().device_id != device_id || verified.body().device_key != signing_key.verifying_key() {
            return Err(store_error(&self.dir, "credential is for another device or key"));
        }
        if user_key.params_id() != public_key.id() {
            return Err(store_error(&self.dir, "attribute key does not belong to these public parameters"));
        }
        let url = String::from_utf8(read(&self.dir, "authority.url")?).map_err(|e| store_error(&self.dir, e))?;
        let epoch = verified.body().epoch;
        Ok(Identity {
            device_id,
            signing_key,
            credential,
            verified,
            public_key,
            authority_key,
            user_key,
            epoch,
            authority_url: url.trim().to_owned(),
        })
    }
}
