//! The authority's secrets at rest: FAME master key, FAME public key and Ed25519 signing key in one sealed file.
//!
//! ```text
//! "SMQS" | version 2 | mode (1 = Argon2id passphrase, 2 = key file)
//!        | m_cost KiB u32 BE | t_cost u32 BE | lanes u32 BE | salt 16 | nonce 24      <- header (AAD)
//!        | XChaCha20-Poly1305( u32 len ‖ public key ‖ u32 len ‖ master key ‖ signing key 32 ‖ flags 1 )
//! ```
//! Flag 1 (the only one): the database has row MACs (`store::integrity`) — set by `init`, and at the first
//! start after an upgrade from a seal without it. It is kept here, where nobody without the unseal secret can
//! clear it, so that a database stripped of its MACs is refused rather than upgraded to them. Version 1 (no
//! flags byte) is the format from before the flag, read as "not recorded".
//!
//! The wrapping key is Argon2id(passphrase, salt) for mode 1 and HKDF-SHA-256(key file, salt) for mode 2. The
//! header is authenticated, so changing the parameters, the mode or any byte fails to unseal with
//! [`Error::Unseal`] — as does a wrong passphrase; the two are deliberately indistinguishable. The public key is
//! inside the seal so that nobody can swap the parameters the authority serves.

use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{CryptoRng, RngCore};
use smqtt_abe::{MasterKey, PublicKey};
use smqtt_wire::SigningKey;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"SMQS";
/// Sealed before the seal recorded anything about the database (no flags byte).
const VERSION_1: u8 = 1;
const VERSION: u8 = 2;
/// The database has row MACs.
const FLAG_STATE_MACS: u8 = 1;
const MODE_PASSPHRASE: u8 = 1;
const MODE_KEY_FILE: u8 = 2;
const HEADER_LEN: usize = 4 + 1 + 1 + 12 + 16 + 24;
/// Largest sealed file read (a master key and public key are a few KiB).
const MAX_SEALED_LEN: usize = 1 << 20;

/// Argon2id cost: 64 MiB, 3 passes, 1 lane (OWASP's second recommended setting), ~0.3 s here.
pub(crate) const ARGON2_M_COST_KIB: u32 = 64 * 1024;
/// See [`ARGON2_M_COST_KIB`].
pub(crate) const ARGON2_T_COST: u32 = 3;
/// See [`ARGON2_M_COST_KIB`].
pub(crate) const ARGON2_LANES: u32 = 1;

/// What unlocks the sealed file. Never a command-line argument: the passphrase comes from a file or an
/// environment variable.
#[derive(Clone)]
pub enum UnsealWith {
    /// A passphrase, stretched with Argon2id.
    Passphrase(Zeroizing<String>),
    /// A file of at least 32 random bytes.
    KeyFile(PathBuf),
}

impl core::fmt::Debug for UnsealWith {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            UnsealWith::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
            UnsealWith::KeyFile(path) => f.debug_tuple("KeyFile").field(path).finish(),
        }
    }
}

impl UnsealWith {
    /// The passphrase in the environment variable `name`.
    ///
    /// # Errors
    /// [`Error::Config`] if it is unset or empty.
    pub fn from_env(name: &str) -> Result<UnsealWith> {
        match std::env::var(name) {
            Ok(value) if !value.is_empty() => Ok(UnsealWith::Passphrase(Zeroizing::new(value))),
            // No cause: `VarError::NotUnicode` carries the value, the passphrase itself.
            _ => Err(Error::config(format!("environment variable {name} is not set or empty"))),
        }
    }

    /// The passphrase in the first line of `path`.
    ///
    /// # Errors
    /// [`Error::Io`], or [`Error::Config`] if the file is empty.
    pub fn from_passphrase_file(path: &Path) -> Result<UnsealWith> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?);
        let line = text.lines().next().unwrap_or("");
        if line.is_empty() {
            return Err(Error::config(format!("passphrase file {} is empty", path.display())));
        }
        Ok(UnsealWith::Passphrase(Zeroizing::new(line.to_owned())))
    }
}

/// The authority's secrets, held in zeroizing memory by their own types.
#[derive(Debug)]
pub struct Secrets {
    /// FAME public key (public, but sealed with the rest so it cannot be swapped).
    pub public_key: PublicKey,
    /// FAME master key.
    pub master_key: MasterKey,
    /// Signs credentials and audit entries.
    pub signing_key: SigningKey,
    /// The database has row MACs (since `init`, or since its upgrade to them): one without them is refused.
    /// `false` only for a seal from before this was recorded (sealed again as version 1, as it was).
    pub state_macs: bool,
}

fn wrapping_key(mode: u8, with: &UnsealWith, costs: [u32; 3], salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    let mut key = Zeroizing::new([0u8; 32]);
    match (mode, with) {
        (MODE_PASSPHRASE, UnsealWith::Passphrase(passphrase)) => {
            let params = argon2::Params::new(costs[0], costs[1], costs[2], Some(32)).map_err(|_| Error::Unseal)?;
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
                .map_err(|_| Error::Unseal)?;
        }
        (MODE_KEY_FILE, UnsealWith::KeyFile(path)) => {
            let material = Zeroizing::new(std::fs::read(path).map_err(|e| Error::io(path, e))?);
            if material.len() < 32 || material.len() > 4096 {
                return Err(Error::config(format!("key file {} must hold 32 to 4096 bytes", path.display())));
            }
            hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), &material)
                .expand(b"smqtt/authority/key-file/v1", key.as_mut())
                .map_err(|_| Error::Unseal)?;
        }
        (MODE_PASSPHRASE, UnsealWith::KeyFile(_)) => {
            return Err(Error::config("the sealed file needs a passphrase, not a key file"))
        }
        (MODE_KEY_FILE, UnsealWith::Passphrase(_)) => {
            return Err(Error::config("the sealed file needs its key file, not a passphrase"))
        }
        _ => return Err(Error::Unseal),
    }
    Ok(key)
}

/// Seals `secrets` under `with`.
///
/// # Errors
/// [`Error::Rng`], [`Error::Io`] for an unreadable key file, [`Error::Config`] for a key file of the wrong size,
/// [`Error::Seal`] if the cipher refuses.
pub fn seal<R: RngCore + CryptoRng>(secrets: &Secrets, with: &UnsealWith, rng: &mut R) -> Result<Vec<u8>> {
    let mode = match with {
        UnsealWith::Passphrase(_) => MODE_PASSPHRASE,
        UnsealWith::KeyFile(_) => MODE_KEY_FILE,
    };
    let costs = [ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_LANES];
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 24];
    rng.try_fill_bytes(&mut salt).map_err(Error::rng)?;
    rng.try_fill_bytes(&mut nonce).map_err(Error::rng)?;
    let mut out = Vec::with_capacity(HEADER_LEN + 8192);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[if secrets.state_macs { VERSION } else { VERSION_1 }, mode]);
    for cost in costs {
        out.extend_from_slice(&cost.to_be_bytes());
    }
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    let key = wrapping_key(mode, with, costs, &salt)?;
    let mut plain = Zeroizing::new(Vec::new());
    let pk = secrets.public_key.to_bytes();
    let msk = secrets.master_key.to_bytes();
    for part in [&pk[..], &msk[..]] {
        plain.extend_from_slice(&u32::try_from(part.len()).map_err(|_| Error::Seal)?.to_be_bytes());
        plain.extend_from_slice(part);
    }
    plain.extend_from_slice(secrets.signing_key.to_bytes().as_ref());
    if secrets.state_macs {
        plain.push(FLAG_STATE_MACS);
    }
    let cipher = XChaCha20Poly1305::new_from_slice(key.as_ref()).map_err(|_| Error::Seal)?;
    let body = cipher.encrypt(&XNonce::from(nonce), Payload { msg: &plain, aad: &out }).map_err(|_| Error::Seal)?;
    out.extend_from_slice(&body);
    Ok(out)
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if input.len() < n {
        return Err(Error::Unseal);
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

fn take_len_prefixed<'a>(input: &mut &'a [u8]) -> Result<&'a [u8]> {
    let len = take(input, 4)?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    take(input, len)
}

/// Opens a sealed file's bytes.
///
/// # Errors
/// [`Error::Unseal`] for a wrong passphrase or key file, a modified file, or bytes that are not a sealed file;
/// [`Error::Config`] when `with` is the wrong kind for this file.
pub fn unseal(bytes: &[u8], with: &UnsealWith) -> Result<Secrets> {
    let known_version = bytes.get(4).is_some_and(|v| [VERSION_1, VERSION].contains(v));
    if bytes.len() < HEADER_LEN + 16 || bytes.len() > MAX_SEALED_LEN || &bytes[..4] != MAGIC || !known_version {
        return Err(Error::Unseal);
    }
    let mode = bytes[5];
    let cost = |i: usize| u32::from_be_bytes([bytes[6 + 4 * i], bytes[7 + 4 * i], bytes[8 + 4 * i], bytes[9 + 4 * i]]);
    let costs = [cost(0), cost(1), cost(2)];
    // Bound the work an altered header could demand (the AEAD would reject it, but only after Argon2 ran).
    if costs[0] > 4 * ARGON2_M_COST_KIB || costs[1] > 4 * ARGON2_T_COST || costs[2] > 4 {
        return Err(Error::Unseal);
    }
    let salt = &bytes[18..34];
    let nonce: [u8; 24] = bytes[34..58].try_into().map_err(|_| Error::Unseal)?;
    let key = wrapping_key(mode, with, costs, salt)?;
    let cipher = XChaCha20Poly1305::new_from_slice(key.as_ref()).map_err(|_| Error::Unseal)?;
    let plain = Zeroizing::new(
        cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: &bytes[HEADER_LEN..], aad: &bytes[..HEADER_LEN] })
            .map_err(|_| Error::Unseal)?,
    );
    let mut rest: &[u8] = &plain;
    let public_key = PublicKey::from_bytes(take_len_prefixed(&mut rest)?).map_err(|_| Error::Unseal)?;
    let master_key = MasterKey::from_bytes(take_len_prefixed(&mut rest)?).map_err(|_| Error::Unseal)?;
    let signing: [u8; 32] = take(&mut rest, 32)?.try_into().map_err(|_| Error::Unseal)?;
    let signing = Zeroizing::new(signing);
    // The version is in the authenticated header: version 2 has exactly the one known flag, version 1 none.
    let state_macs = bytes[4] == VERSION && take(&mut rest, 1)? == [FLAG_STATE_MACS];
    if !rest.is_empty() || master_key.params_id() != public_key.id() || (bytes[4] == VERSION && !state_macs) {
        return Err(Error::Unseal);
    }
    Ok(Secrets { public_key, master_key, signing_key: SigningKey::from_bytes(&signing), state_macs })
}
