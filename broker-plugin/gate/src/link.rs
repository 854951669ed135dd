//! How the gate reaches the authority: through its host, never on its own.
//!
//! The gate does no network I/O (the Mosquitto plugin links no HTTP client, `docs/architecture.md`). A host
//! that can reach the authority hands the gate an [`AuthorityLink`]: `smqtt-broker` does (HTTP via
//! `smqtt-authority-api`), so `[authority] url` works there. Without a link the gate follows the authority through
//! files only: `epoch_file`, and a sealing store renewed beside the broker (`smqtt follow` keeps both current).

use std::path::Path;

/// A failure of the link, kept with its cause; the gate retries at its next poll or epoch check.
pub type LinkError = Box<dyn std::error::Error + Send + Sync>;

/// The authority, as a host reaches it. Both calls block; the gate makes them on threads of its own.
pub trait AuthorityLink: Send + Sync {
    /// The authority's current epoch statement (`smqtt-epoch1.…`, `docs/wire.md` §10.2) from `url`. The gate
    /// verifies it itself under the configured authority key: the link need not be trusted.
    ///
    /// # Errors
    /// Whatever kept the statement from arriving.
    fn epoch_statement(&self, url: &str) -> Result<String, LinkError>;

    /// Renews the device identity in `store` (the broker's sealing identity) at the authority that store names,
    /// checking the answer under the authority key and parameters the store pinned at enrollment, and saves it
    /// there; the gate reloads the store when its credential changes.
    ///
    /// # Errors
    /// Whatever kept the renewal from completing (the store is left as it was).
    fn renew_identity(&self, store: &Path) -> Result<(), LinkError>;
}
