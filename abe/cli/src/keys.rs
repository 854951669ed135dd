//! Reading the key files the subcommands and the demo share: bounded, then validated by `smqtt-abe`.

use std::path::Path;

use smqtt_abe::limits::MAX_OBJECT_LEN;
use smqtt_abe::{MasterKey, PublicKey, UserKey};

use crate::error::CliError;
use crate::io::Input;

/// Reads and validates a public key file.
pub(crate) fn load_public_key(path: &Path) -> Result<PublicKey, CliError> {
    let bytes = Input::File(path.to_path_buf()).read_bounded(MAX_OBJECT_LEN, "public key")?;
    PublicKey::from_bytes(&bytes).map_err(|e| CliError::abe(path.display(), e))
}

/// Reads and validates a master key file.
pub(crate) fn load_master_key(path: &Path) -> Result<MasterKey, CliError> {
    let bytes = Input::File(path.to_path_buf()).read_bounded(MAX_OBJECT_LEN, "master key")?;
    MasterKey::from_bytes(&bytes).map_err(|e| CliError::abe(path.display(), e))
}

/// Reads and validates a user key file.
pub(crate) fn load_user_key(path: &Path) -> Result<UserKey, CliError> {
    let bytes = Input::File(path.to_path_buf()).read_bounded(MAX_OBJECT_LEN, "user key")?;
    UserKey::from_bytes(&bytes).map_err(|e| CliError::abe(path.display(), e))
}
