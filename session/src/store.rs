//! The device store (feature `store`): one directory (0700) with the device's identity, keys and the
//! authority's public values. File I/O only — enrollment and renewal talk to the authority elsewhere (the SDK)
//! and hand their verified answers here to be kept.
//!
//! ```text
//! device.id        the device id
//! device.key       Ed25519 signing key, 32 bytes (0600)
//! user.key         FAME attribute key, smqtt-abe encoding (0600)
//! credential       the authority-signed credential
//! public.key       FAME public parameters (pinned at enrollment, never replaced)
//! authority.pub    the authority's verifying key, 32 bytes (pinned at enrollment, never replaced)
//! epoch.statement  the newest authority-signed epoch statement seen (`smqtt-epoch1.…`)
//! authority.url    where to renew
//! authority.ca.pem optional: the CA that signs the authority's HTTPS certificate (else the system roots)
//! ```
//! Files are replaced atomically (a temporary file of its own, fsync, rename), so a crash never leaves half a
//! key; key files and the directory must be private to their owner.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rand_core::{CryptoRng, RngCore};
use smqtt_abe::{PublicKey, UserKey};
use smqtt_wire::{DeviceId, EpochStatement, SigningKey, UnixTime, VerifiedCredential, VerifiedEpoch, VerifyingKey};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::identity::{Identity, IdentityPieces};

/// Largest file read from a store.
const MAX_FILE: u64 = 4 * 1024 * 1024;

/// The files of a store, each with the permissions it is written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreFile {
    /// `device.id`.
    DeviceId,
    /// `device.key` (0600).
    DeviceKey,
    /// `user.key` (0600).
    UserKey,
    /// `credential`.
    Credential,
    /// `public.key`.
    PublicKey,
    /// `authority.pub`.
    AuthorityKey,
    /// `epoch.statement`.
    EpochStatement,
    /// `authority.url`.
    AuthorityUrl,
    /// `authority.ca.pem`.
    AuthorityCa,
}

impl StoreFile {
    /// The file's name in the store directory.
    pub fn name(self) -> &'static str {
        match self {
            StoreFile::DeviceId => "device.id",
            StoreFile::DeviceKey => "device.key",
            StoreFile::UserKey => "user.key",
            StoreFile::Credential => "credential",
            StoreFile::PublicKey => "public.key",
            StoreFile::AuthorityKey => "authority.pub",
            StoreFile::EpochStatement => "epoch.statement",
            StoreFile::AuthorityUrl => "authority.url",
            StoreFile::AuthorityCa => "authority.ca.pem",
        }
    }

    fn mode(self) -> u32 {
        match self {
            StoreFile::DeviceKey | StoreFile::UserKey => 0o600,
            _ => 0o644,
        }
    }
}

/// A device store directory (nothing is read until asked).
#[derive(Clone, Debug)]
pub struct IdentityStore {
    dir: PathBuf,
}

impl IdentityStore {
    /// The store at `dir`.
    pub fn at(dir: &Path) -> IdentityStore {
        IdentityStore { dir: dir.to_path_buf() }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of one of its files.
    pub fn path(&self, file: StoreFile) -> PathBuf {
        self.dir.join(file.name())
    }

    /// Whether the store holds a credential (an enrolled device).
    pub fn is_enrolled(&self) -> bool {
        self.path(StoreFile::Credential).exists()
    }

    /// Makes the directory (0700) if need be and checks that it is private, then returns the device's signing
    /// key: the one an interrupted enrollment left (it must be private too), or a new one from `rng`, written
    /// before anything is asked of the authority.
    ///
    /// # Errors
    /// [`Error::StoreIo`], and [`Error::StoreInvalid`] for a directory or key others may read, or a symlink.
    pub fn prepare<R: RngCore + CryptoRng>(&self, rng: &mut R) -> Result<SigningKey, Error> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| Error::StoreIo { path: self.dir.clone(), source })?;
        // A directory made by someone else keeps its permissions: it must be private before a key goes in.
        check_private(&self.dir)?;
        let key_path = self.path(StoreFile::DeviceKey);
        if key_path.exists() {
            // Left by an interrupted enrollment of this store (nobody else could have written it here).
            check_private(&key_path)?;
            return self.signing_key();
        }
        let key = SigningKey::generate(rng);
        self.write(StoreFile::DeviceKey, key.to_bytes().as_ref())?;
        Ok(key)
    }

    /// Replaces one file atomically, with the file's permissions.
    ///
    /// # Errors
    /// [`Error::StoreIo`].
    pub fn write(&self, file: StoreFile, bytes: &[u8]) -> Result<(), Error> {
        write_atomic(&self.path(file), bytes, file.mode())
    }

    /// Keeps a renewal's verified answer: the attribute key, the credential and the epoch statement. Refuses
    /// an epoch older than the newest one the store has a statement of (epochs never go backwards).
    ///
    /// # Errors
    /// [`Error::EpochRegressed`], [`Error::StoreIo`], [`Error::StoreInvalid`].
    pub fn save_renewal(
        &self,
        user_key: &UserKey,
        credential: &VerifiedCredential,
        statement: &VerifiedEpoch,
    ) -> Result<(), Error> {
        if let Some(seen) = self.newest_epoch(&self.authority_key()?)? {
            if statement.epoch() < seen {
                return Err(Error::EpochRegressed { stored: seen, offered: statement.epoch() });
            }
        }
        self.write(StoreFile::UserKey, &user_key.to_bytes())?;
        self.write(StoreFile::Credential, credential.to_bytes())?;
        self.write(StoreFile::EpochStatement, statement.to_text().as_bytes())
    }

    /// Loads the whole identity at `now`, checking that the pieces belong together ([`Identity::assemble`]).
    ///
    /// # Errors
    /// [`Error::StoreIo`] for missing or unreadable files, [`Error::StoreInvalid`] for corrupt or inconsistent
    /// ones.
    pub fn load(&self, now: UnixTime) -> Result<Identity, Error> {
        let user_key = UserKey::from_bytes(&Zeroizing::new(self.read(StoreFile::UserKey)?))
            .map_err(|e| Error::corrupt(self.path(StoreFile::UserKey), "not an attribute key", e))?;
        let pieces = IdentityPieces {
            device_id: self.device_id()?,
            signing_key: self.signing_key()?,
            credential: self.read(StoreFile::Credential)?,
            public_key: self.public_key()?,
            authority_key: self.authority_key()?,
            user_key,
            authority_url: self.authority_url()?,
        };
        Identity::assemble(pieces, now).map_err(|e| match e {
            Error::StoreInvalid { path, problem, source } => {
                Error::StoreInvalid { path: self.dir.join(path), problem, source }
            }
            other => other,
        })
    }

    /// The newest epoch this store has a statement of, verified under `authority_key`, if any.
    ///
    /// # Errors
    /// [`Error::StoreIo`], [`Error::StoreInvalid`] for a statement that does not verify.
    pub fn newest_epoch(&self, authority_key: &VerifyingKey) -> Result<Option<u64>, Error> {
        let path = self.path(StoreFile::EpochStatement);
        if !path.exists() {
            return Ok(None);
        }
        let text = self.read_text(StoreFile::EpochStatement)?;
        let verified = EpochStatement::parse(&text)
            .and_then(|s| s.verify(authority_key))
            .map_err(|e| Error::corrupt(&path, "not a statement signed by the pinned authority", e))?;
        Ok(Some(verified.epoch()))
    }

    /// The authority's URL.
    ///
    /// # Errors
    /// [`Error::StoreIo`], [`Error::StoreInvalid`].
    pub fn authority_url(&self) -> Result<String, Error> {
        Ok(self.read_text(StoreFile::AuthorityUrl)?.trim().to_owned())
    }

    /// The CA of an HTTPS authority, if the store has one.
    ///
    /// # Errors
    /// [`Error::StoreIo`].
    pub fn authority_ca_pem(&self) -> Result<Option<Vec<u8>>, Error> {
        if self.path(StoreFile::AuthorityCa).exists() {
            self.read(StoreFile::AuthorityCa).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The pinned authority key.
    ///
    /// # Errors
    /// [`Error::StoreIo`], [`Error::StoreInvalid`].
    pub fn authority_key(&self) -> Result<VerifyingKey, Error> {
        let path = self.path(StoreFile::AuthorityKey);
        let bytes: [u8; 32] =
            self.read(StoreFile::AuthorityKey)?.try_into().map_err(|_| Error::invalid(&path, "not a 32-byte key"))?;
        VerifyingKey::from_bytes(&bytes).map_err(|e| Error::corrupt(&path, "not a verifying key", e))
    }

    /// The pinned FAME public parameters.
    ///
    /// # Errors
    /// [`Error::StoreIo`], [`Error::StoreInvalid`].
    pub fn public_key(&self) -> Result<PublicKey, Error> {
        PublicKey::from_bytes(&self.read(StoreFile::PublicKey)?)
            .map_err(|e| Error::corrupt(self.path(StoreFile::PublicKey), "not FAME public parameters", e))
    }

    /// The device id.
    ///
    /// # Errors
    /// [`Error::StoreIo`], [`Error::StoreInvalid`].
    pub fn device_id(&self) -> Result<DeviceId, Error> {
        DeviceId::new(self.read_text(StoreFile::DeviceId)?.trim())
            .map_err(|e| Error::corrupt(self.path(StoreFile::DeviceId), "not a device id", e))
    }

    /// The device's signing key.
    ///
    /// # Errors
    /// [`Error::StoreIo`], [`Error::StoreInvalid`].
    pub fn signing_key(&self) -> Result<SigningKey, Error> {
        let bytes = Zeroizing::new(self.read(StoreFile::DeviceKey)?);
        let array: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| Error::invalid(self.path(StoreFile::DeviceKey), "not a 32-byte key"))?;
        Ok(SigningKey::from_bytes(&Zeroizing::new(array)))
    }

    fn read(&self, file: StoreFile) -> Result<Vec<u8>, Error> {
        let path = self.path(file);
        let metadata = std::fs::metadata(&path).map_err(|source| Error::StoreIo { path: path.clone(), source })?;
        if metadata.len() > MAX_FILE {
            return Err(Error::invalid(&path, "file too large"));
        }
        std::fs::read(&path).map_err(|source| Error::StoreIo { path, source })
    }

    fn read_text(&self, file: StoreFile) -> Result<String, Error> {
        String::from_utf8(self.read(file)?).map_err(|e| Error::corrupt(self.path(file), "not UTF-8 text", e))
    }
}

/// Replaces `path` with `bytes` atomically: a temporary file of its own beside it (created with `mode`, never
/// following a planted link), fsync, rename. Readers see the old file or the new one, never half of one.
///
/// # Errors
/// [`Error::StoreIo`].
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    // A name of its own per write (process, counter): concurrent renewals never share or rename each other's
    // half-written file, and create_new never follows a planted link.
    let tmp =
        path.with_file_name(format!(".{name}.{}.{}.tmp", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|source| Error::StoreIo { path: tmp.clone(), source })?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all()).and_then(|()| std::fs::rename(&tmp, path));
    written.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        Error::StoreIo { path: path.to_path_buf(), source }
    })
}

/// Refuses a store directory or key file that others may read or write (left by someone else, or made by hand).
fn check_private(path: &Path) -> Result<(), Error> {
    let metadata =
        std::fs::symlink_metadata(path).map_err(|source| Error::StoreIo { path: path.to_path_buf(), source })?;
    if metadata.file_type().is_symlink() {
        return Err(Error::invalid(path, "is a symbolic link; refusing to use it"));
    }
    if metadata.mode() & 0o077 != 0 {
        return Err(Error::invalid(path, "is accessible to other users (chmod 700 the directory, 600 the key)"));
    }
    Ok(())
}
