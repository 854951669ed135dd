//! The device store: one directory (0700) with the device's identity, keys and the authority's public values.
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
//! Files are replaced atomically (write to a temporary file, fsync, rename), so a crash never leaves half a key.
//!
//! **Trust.** Enrollment pins the authority key the enrollment token names (or one given out of band) and
//! refuses any other; the FAME public key is taken only as vouched for by that key's signed epoch statement.
//! Renewal never writes either file again: every later answer (epoch statements, key deliveries, credentials)
//! must verify under the pinned key and name the pinned parameter set, and epochs never go backwards.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use smqtt_abe::{PublicKey, UserKey};
use smqtt_authority_api::{Client, ClientError, Pinned};
use smqtt_wire::{DeviceId, EpochStatement, SigningKey, UnverifiedCredential, VerifiedCredential, VerifyingKey};
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
    use std::sync::atomic::{AtomicU64, Ordering};
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
        .map_err(|e| store_error(&tmp, e))?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all()).and_then(|()| std::fs::rename(&tmp, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        store_error(path, e)
    })
}

/// Refuses a store directory or key file that others may read or write (left by someone else, or made by hand).
fn check_private(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt as _;
    let metadata = std::fs::symlink_metadata(path).map_err(|e| store_error(path, e))?;
    if metadata.file_type().is_symlink() {
        return Err(store_error(path, "is a symbolic link; refusing to use it"));
    }
    if metadata.mode() & 0o077 != 0 {
        return Err(store_error(path, "is accessible to other users (chmod 700 the directory, 600 the key)"));
    }
    Ok(())
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>, Error> {
    let path = dir.join(name);
    let metadata = std::fs::metadata(&path).map_err(|e| store_error(&path, e))?;
    if metadata.len() > 4 * 1024 * 1024 {
        return Err(store_error(&path, "file too large"));
    }
    std::fs::read(&path).map_err(|e| store_error(&path, e))
}

/// Failures that mean "this answer is not from the pinned authority" keep their type; the rest are transport or
/// refusals.
fn authority_error(error: ClientError) -> Error {
    match error {
        ClientError::AuthorityKeyMismatch { .. }
        | ClientError::NoPinnedAuthority
        | ClientError::BadAuthoritySignature(_)
        | ClientError::ParamsChanged
        | ClientError::KeyMismatch => Error::Untrusted(error),
        other => Error::Authority(other.to_string()),
    }
}

fn authority_client(url: &str, ca_pem: Option<&[u8]>) -> Result<Client, Error> {
    match ca_pem {
        Some(pem) => Client::with_ca_pem(url, pem).map_err(|e| Error::Authority(format!("authority CA: {e}"))),
        None => Ok(Client::new(url)),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// How to reach and trust the authority at enrollment, besides the token.
#[derive(Clone, Debug, Default)]
pub struct EnrollOptions {
    /// The authority's verifying key given out of band; must agree with the token's pin when both are present.
    pub authority_key: Option<VerifyingKey>,
    /// PEM CA certificates for an `https://` authority with a private CA (kept in the store for renewals).
    pub authority_ca_pem: Option<Vec<u8>>,
}

/// Whether `url` may carry an enrollment token: HTTPS, or plain HTTP to a loopback address only (the token is a
/// bearer secret until redeemed; everything after enrollment is signed, so renewals may use either).
fn token_may_travel_to(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return url.starts_with("https://") };
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    if authority.contains('@') {
        // `http://127.0.0.1:80@elsewhere`: the host is what follows the userinfo.
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(host, _port)| host),
    };
    host == "localhost" || host == "::1" || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
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

    /// Enrolls a new device: makes its Ed25519 key, redeems `token` at the authority the token pins, fetches
    /// the attribute key, and writes everything to a new store directory.
    ///
    /// # Errors
    /// As [`enroll_pinned`](Self::enroll_pinned).
    pub fn enroll(dir: &Path, authority_url: &str, token: &str) -> Result<Identity, Error> {
        DeviceStore::enroll_pinned(dir, authority_url, token, &EnrollOptions::default())
    }

    /// Like [`enroll`](Self::enroll), with the authority key given out of band as well as, or instead of, the
    /// one the token pins (if both are present they must agree), and optionally the CA of an HTTPS authority.
    /// The token travels only over HTTPS, or plain HTTP to a loopback address.
    ///
    /// The device key is written before the authority is asked, so an enrollment interrupted by a crash is
    /// completed by running it again with the same token (the authority answers the same token and key
    /// again); a directory that already holds a credential is never overwritten.
    ///
    /// # Errors
    /// [`Error::InsecureAuthority`] for a plain-HTTP URL that is not loopback; [`Error::Store`] if the
    /// directory already holds an enrolled device or cannot be written; [`Error::Untrusted`] for an authority
    /// that is not the pinned one (or a token that pins none, with no key given), or answers it did not sign;
    /// [`Error::Authority`] for refusals, a bad CA file and transport failures.
    pub fn enroll_pinned(
        dir: &Path,
        authority_url: &str,
        token: &str,
        options: &EnrollOptions,
    ) -> Result<Identity, Error> {
        if !token_may_travel_to(authority_url) {
            return Err(Error::InsecureAuthority(authority_url.to_owned()));
        }
        if dir.join("credential").exists() {
            return Err(store_error(dir, "already holds an enrolled device; refusing to overwrite it"));
        }
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| store_error(dir, e))?;
        // A directory made by someone else keeps its permissions: it must be private before a key goes in.
        check_private(dir)?;
        let store = DeviceStore::at(dir);
        let signing_key = if dir.join("device.key").exists() {
            // Left by an interrupted enrollment of this store (nobody else could have written it here).
            check_private(&dir.join("device.key"))?;
            store.signing_key()?
        } else {
            let key = SigningKey::generate(&mut rand_core::OsRng);
            write_atomic(&dir.join("device.key"), key.to_bytes().as_ref(), 0o600)?;
            key
        };
        let client = authority_client(authority_url, options.authority_ca_pem.as_deref())?;
        let enrollment =
            client.enroll_pinned(token, &signing_key, options.authority_key.as_ref()).map_err(authority_error)?;
        let device_id = enrollment.credential.body().device_id.clone();
        let params = enrollment.params;
        write_atomic(&dir.join("device.id"), device_id.as_str().as_bytes(), 0o644)?;
        write_atomic(&dir.join("authority.url"), authority_url.as_bytes(), 0o644)?;
        if let Some(ca) = &options.authority_ca_pem {
            write_atomic(&dir.join("authority.ca.pem"), ca, 0o644)?;
        }
        write_atomic(&dir.join("authority.pub"), &params.verifying_key.to_bytes(), 0o644)?;
        write_atomic(&dir.join("public.key"), &params.public_key.to_bytes(), 0o644)?;
        write_atomic(&dir.join("epoch.statement"), params.statement.to_text().as_bytes(), 0o644)?;
        store.renew()
    }

    /// Fetches a fresh attribute key and credential for the authority's current epoch and stores them. The
    /// answer must verify under the pinned authority key and name the pinned FAME parameters, the key must
    /// decapsulate under them, and the epoch may not be older than the newest one this store has seen.
    ///
    /// # Errors
    /// [`Error::Store`]; [`Error::Untrusted`] for answers the pinned authority did not sign or a changed
    /// parameter set; [`Error::EpochRegressed`]; [`Error::Authority`] (e.g. the device was revoked).
    pub fn renew(&self) -> Result<Identity, Error> {
        let url = self.authority_url()?;
        let signing_key = self.signing_key()?;
        let device_id = self.device_id()?;
        let authority_key = self.authority_key()?;
        let public_key = self.public_key()?;
        let pinned = Pinned { verifying_key: &authority_key, public_key: &public_key };
        let keys = self
            .client(&url)?
            .request_key_pinned(pinned, &device_id, &signing_key, &mut rand_core::OsRng)
            .map_err(authority_error)?;
        if let Some(seen) = self.newest_epoch(&authority_key)? {
            if keys.statement.epoch() < seen {
                return Err(Error::EpochRegressed { stored: seen, offered: keys.statement.epoch() });
            }
        }
        write_atomic(&self.dir.join("user.key"), &keys.user_key.to_bytes(), 0o600)?;
        write_atomic(&self.dir.join("credential"), keys.credential.to_bytes(), 0o644)?;
        write_atomic(&self.dir.join("epoch.statement"), keys.statement.to_text().as_bytes(), 0o644)?;
        self.load()
    }

    /// The authority's current epoch, from its statement verified under the pinned authority key and naming the
    /// pinned parameter set (an unsigned or foreign answer is an error, so nobody on the path picks the moment
    /// of a renewal).
    ///
    /// # Errors
    /// [`Error::Store`], [`Error::Untrusted`], [`Error::Authority`].
    pub fn authority_epoch(&self) -> Result<u64, Error> {
        let authority_key = self.authority_key()?;
        let public_key = self.public_key()?;
        let pinned = Pinned { verifying_key: &authority_key, public_key: &public_key };
        let statement = self.client(&self.authority_url()?)?.epoch_verified(pinned).map_err(authority_error)?;
        Ok(statement.epoch())
    }

    /// The newest epoch this store has a verified statement of, if any.
    fn newest_epoch(&self, authority_key: &VerifyingKey) -> Result<Option<u64>, Error> {
        let path = self.dir.join("epoch.statement");
        if !path.exists() {
            return Ok(None);
        }
        let text = String::from_utf8(read(&self.dir, "epoch.statement")?).map_err(|e| store_error(&path, e))?;
        let verified =
            EpochStatement::parse(&text).and_then(|s| s.verify(authority_key)).map_err(|e| store_error(&path, e))?;
        Ok(Some(verified.epoch()))
    }

    /// A client of the store's authority, trusting the store's CA file if it has one.
    fn client(&self, url: &str) -> Result<Client, Error> {
        let ca_path = self.dir.join("authority.ca.pem");
        if ca_path.exists() {
            authority_client(url, Some(&read(&self.dir, "authority.ca.pem")?))
        } else {
            authority_client(url, None)
        }
    }

    fn authority_url(&self) -> Result<String, Error> {
        let url = String::from_utf8(read(&self.dir, "authority.url")?).map_err(|e| store_error(&self.dir, e))?;
        Ok(url.trim().to_owned())
    }

    fn authority_key(&self) -> Result<VerifyingKey, Error> {
        let path = self.dir.join("authority.pub");
        let vk: [u8; 32] =
            read(&self.dir, "authority.pub")?.try_into().map_err(|_| store_error(&path, "not a 32-byte key"))?;
        VerifyingKey::from_bytes(&vk).map_err(|e| store_error(&path, e))
    }

    fn public_key(&self) -> Result<PublicKey, Error> {
        PublicKey::from_bytes(&read(&self.dir, "public.key")?).map_err(|e| store_error(&self.dir.join("public.key"), e))
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
        let public_key = self.public_key()?;
        let authority_key = self.authority_key()?;
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
        let url = self.authority_url()?;
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
            authority_url: url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::token_may_travel_to;

    #[test]
    fn tokens_travel_over_https_or_to_loopback_only() {
        for ok in [
            "https://authority.example",
            "http://127.0.0.1:8740",
            "http://127.8.0.1/",
            "http://localhost:1",
            "http://[::1]:80",
        ] {
            assert!(token_may_travel_to(ok), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:8740",
            "http://authority.example",
            "http://127.0.0.1.evil:80",
            "ftp://x",
            "http://[::2]:1",
        ] {
            assert!(!token_may_travel_to(bad), "{bad}");
        }
    }
}
