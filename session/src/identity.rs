//! A device's identity: everything it needs to seal and open, checked to belong together.

use smqtt_abe::{PublicKey, UserKey};
use smqtt_wire::{DeviceId, SigningKey, UnixTime, UnverifiedCredential, VerifiedCredential, VerifyingKey};

use crate::error::Error;

/// A device identity whose pieces belong together: the credential verified under the authority key, naming
/// this device id and signing key, and the attribute key of these public parameters.
pub struct Identity {
    device_id: DeviceId,
    signing_key: SigningKey,
    credential: Vec<u8>,
    verified: VerifiedCredential,
    public_key: PublicKey,
    authority_key: VerifyingKey,
    user_key: UserKey,
    authority_url: String,
}

/// An identity taken apart, for the shell that runs it (a sealer gets the signing key, an opener the attribute
/// key). Nothing here is checked any more once it leaves [`Identity`].
#[derive(Debug)]
#[non_exhaustive]
pub struct IdentityParts {
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
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

/// What an identity is made of, before it is checked.
#[derive(Debug)]
pub struct IdentityPieces {
    /// The device id.
    pub device_id: DeviceId,
    /// Its Ed25519 signing key.
    pub signing_key: SigningKey,
    /// Its credential, as the authority signed it.
    pub credential: Vec<u8>,
    /// The FAME public parameters.
    pub public_key: PublicKey,
    /// The authority's verifying key.
    pub authority_key: VerifyingKey,
    /// Its attribute key.
    pub user_key: UserKey,
    /// Where the authority is.
    pub authority_url: String,
}

impl Identity {
    /// Checks that the pieces belong together at `now`: the credential verifies under the authority key and is
    /// valid now, names this device id and signing key, and the attribute key is of these public parameters.
    ///
    /// # Errors
    /// [`Error::StoreInvalid`] naming the piece that does not fit (`credential`, `user.key`).
    pub fn assemble(pieces: IdentityPieces, now: UnixTime) -> Result<Identity, Error> {
        let IdentityPieces { device_id, signing_key, credential, public_key, authority_key, user_key, authority_url } =
            pieces;
        let verified = UnverifiedCredential::from_bytes(&credential)
            .and_then(|c| c.verify(&authority_key, now.as_secs()))
            .map_err(|e| Error::corrupt("credential", "does not verify", e))?;
        if verified.body().device_id != device_id || verified.body().device_key != signing_key.verifying_key() {
            return Err(Error::invalid("credential", "is for another device or key"));
        }
        if user_key.params_id() != public_key.id() {
            return Err(Error::invalid("user.key", "does not belong to these public parameters"));
        }
        Ok(Identity {
            device_id,
            signing_key,
            credential,
            verified,
            public_key,
            authority_key,
            user_key,
            authority_url,
        })
    }

    /// The device id.
    pub fn device_id(&self) -> &DeviceId {
        &self.device_id
    }

    /// The epoch of the attribute key and the credential.
    pub fn epoch(&self) -> u64 {
        self.verified.body().epoch
    }

    /// The credential, as signed bytes.
    pub fn credential(&self) -> &[u8] {
        &self.credential
    }

    /// The credential, verified.
    pub fn verified(&self) -> &VerifiedCredential {
        &self.verified
    }

    /// The FAME public parameters.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// The authority's verifying key.
    pub fn authority_key(&self) -> &VerifyingKey {
        &self.authority_key
    }

    /// Where the authority is.
    pub fn authority_url(&self) -> &str {
        &self.authority_url
    }

    /// The device's signing key (for CONNECT tokens; redacted in `Debug`, zeroized on drop).
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing_key
    }

    /// The attribute key.
    pub fn user_key(&self) -> &UserKey {
        &self.user_key
    }

    /// The verifying half of the device's signing key.
    pub fn device_key(&self) -> VerifyingKey {
        self.signing_key.verifying_key()
    }

    /// Takes the identity apart for the shell that runs it.
    pub fn into_parts(self) -> IdentityParts {
        let epoch = self.epoch();
        IdentityParts {
            device_id: self.device_id,
            signing_key: self.signing_key,
            credential: self.credential,
            verified: self.verified,
            public_key: self.public_key,
            authority_key: self.authority_key,
            user_key: self.user_key,
            epoch,
            authority_url: self.authority_url,
        }
    }
}
