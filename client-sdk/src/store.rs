//! The device store with the authority's side of it: enrollment and renewal over HTTP (the files themselves are
//! kept by the engine's [`IdentityStore`], whose docs list them).
//!
//! **Trust.** Enrollment pins the authority key the enrollment token names (or one given out of band) and
//! refuses any other; the FAME public key is taken only as vouched for by that key's signed epoch statement.
//! Renewal never writes either file again: every later answer (epoch statements, key deliveries, credentials)
//! must verify under the pinned key and name the pinned parameter set, and epochs never go backwards.

use std::path::Path;

use smqtt_authority_api::{Client, ClientError, Pinned};
use smqtt_session::{write_atomic, Identity, IdentityStore, StoreFile, UnixTime};
use smqtt_wire::{EpochStatement, VerifyingKey};

use crate::error::Error;

fn store_error(path: &Path, message: impl core::fmt::Display) -> Error {
    Error::Store { path: path.display().to_string(), message: message.to_string(), source: None }
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
        other => Error::Authority(other),
    }
}

fn authority_client(url: &str, ca_pem: Option<&[u8]>) -> Result<Client, Error> {
    match ca_pem {
        Some(pem) => Client::with_ca_pem(url, pem).map_err(Error::Authority),
        None => Ok(Client::new(url)),
    }
}

/// What one [`DeviceStore::follow_once`] step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Followed {
    /// The authority's epoch, from its verified statement.
    pub epoch: u64,
    /// Whether the epoch file was replaced by the statement.
    pub statement_written: bool,
    /// Whether the store's identity was renewed for that epoch.
    pub renewed: bool,
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
    files: IdentityStore,
}

impl DeviceStore {
    /// The store at `dir` (nothing is read yet).
    pub fn at(dir: &Path) -> DeviceStore {
        DeviceStore { files: IdentityStore::at(dir) }
    }

    /// Its files, as the engine keeps them.
    pub fn files(&self) -> &IdentityStore {
        &self.files
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
        let store = DeviceStore::at(dir);
        if store.files.is_enrolled() {
            return Err(store_error(dir, "already holds an enrolled device; refusing to overwrite it"));
        }
        let signing_key = store.files.prepare(&mut rand_core::OsRng)?;
        let client = authority_client(authority_url, options.authority_ca_pem.as_deref())?;
        let enrollment =
            client.enroll_pinned(token, &signing_key, options.authority_key.as_ref()).map_err(authority_error)?;
        let device_id = enrollment.credential.body().device_id.clone();
        let params = enrollment.params;
        let files = &store.files;
        files.write(StoreFile::DeviceId, device_id.as_str().as_bytes())?;
        files.write(StoreFile::AuthorityUrl, authority_url.as_bytes())?;
        if let Some(ca) = &options.authority_ca_pem {
            files.write(StoreFile::AuthorityCa, ca)?;
        }
        files.write(StoreFile::AuthorityKey, &params.verifying_key.to_bytes())?;
        files.write(StoreFile::PublicKey, &params.public_key.to_bytes())?;
        files.write(StoreFile::EpochStatement, params.statement.to_text().as_bytes())?;
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
        let files = &self.files;
        let (signing_key, device_id) = (files.signing_key()?, files.device_id()?);
        let (authority_key, public_key) = (files.authority_key()?, files.public_key()?);
        let pinned = Pinned { verifying_key: &authority_key, public_key: &public_key };
        let keys = self
            .client()?
            .request_key_pinned(pinned, &device_id, &signing_key, &mut rand_core::OsRng)
            .map_err(authority_error)?;
        files.save_renewal(&keys.user_key, &keys.credential, &keys.statement)?;
        self.load()
    }

    /// The authority's current epoch, from its statement verified under the pinned authority key and naming the
    /// pinned parameter set (an unsigned or foreign answer is an error, so nobody on the path picks the moment
    /// of a renewal).
    ///
    /// # Errors
    /// [`Error::Store`], [`Error::Untrusted`], [`Error::Authority`].
    pub fn authority_epoch(&self) -> Result<u64, Error> {
        let authority_key: VerifyingKey = self.files.authority_key()?;
        let public_key = self.files.public_key()?;
        let pinned = Pinned { verifying_key: &authority_key, public_key: &public_key };
        let statement = self.client()?.epoch_verified(pinned).map_err(authority_error)?;
        Ok(statement.epoch())
    }

    /// One step of following the authority beside a broker (`smqtt follow`): fetches the authority's epoch
    /// statement, verified under the pinned key and parameters; replaces `epoch_file` atomically with it when the
    /// file holds an older epoch, no statement of this authority, or nothing (never backwards); then renews this
    /// store's identity if it is of an older epoch. The file is written first, so a revocation is enforced by
    /// the broker before the store has renewed.
    ///
    /// # Errors
    /// [`Error::Store`], [`Error::Untrusted`], [`Error::Authority`] (a renewal refused, e.g. of a revoked
    /// device: the epoch file is written all the same).
    pub fn follow_once(&self, epoch_file: Option<&Path>) -> Result<Followed, Error> {
        let authority_key: VerifyingKey = self.files.authority_key()?;
        let public_key = self.files.public_key()?;
        let pinned = Pinned { verifying_key: &authority_key, public_key: &public_key };
        let statement = self.client()?.epoch_verified(pinned).map_err(authority_error)?;
        let epoch = statement.epoch();
        let mut statement_written = false;
        if let Some(path) = epoch_file {
            let held = std::fs::read_to_string(path)
                .ok()
                .and_then(|text| EpochStatement::parse(text.trim()).ok())
                .and_then(|parsed| parsed.verify(&authority_key).ok())
                .map(|verified| verified.epoch());
            if held.is_none_or(|held| held < epoch) {
                write_atomic(path, format!("{}\n", statement.to_text()).as_bytes(), 0o644)?;
                statement_written = true;
            }
        }
        let renewed = match self.files.newest_epoch(&authority_key)? {
            Some(stored) if stored >= epoch => false,
            _ => {
                self.renew()?;
                true
            }
        };
        Ok(Followed { epoch, statement_written, renewed })
    }

    /// A client of the store's authority, trusting the store's CA file if it has one.
    fn client(&self) -> Result<Client, Error> {
        let url = self.files.authority_url()?;
        authority_client(&url, self.files.authority_ca_pem()?.as_deref())
    }

    /// Loads the whole identity, checking that the pieces belong together.
    ///
    /// # Errors
    /// [`Error::Store`] for missing, corrupt or inconsistent files.
    pub fn load(&self) -> Result<Identity, Error> {
        Ok(self.files.load(UnixTime::now())?)
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
