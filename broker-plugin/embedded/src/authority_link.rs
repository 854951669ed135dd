//! The embedded broker's way to the authority (HTTP via `smqtt-authority-api`), handed to the gate, which does
//! no network I/O of its own.

use std::path::Path;

use smqtt_authority_api::{Client, Pinned};
use smqtt_gate::{AuthorityLink, LinkError};
use smqtt_session::IdentityStore;

/// `[authority] url` polling and renewals of the sealing identity, over blocking HTTP(S).
#[derive(Debug, Default)]
pub(crate) struct HttpAuthorityLink;

impl AuthorityLink for HttpAuthorityLink {
    fn epoch_statement(&self, url: &str) -> Result<String, LinkError> {
        Ok(Client::new(url).epoch()?.statement)
    }

    fn renew_identity(&self, store: &Path) -> Result<(), LinkError> {
        let store = IdentityStore::at(store);
        let (authority_key, public_key) = (store.authority_key()?, store.public_key()?);
        let url = store.authority_url()?;
        let client = match store.authority_ca_pem()? {
            Some(pem) => Client::with_ca_pem(&url, &pem)?,
            None => Client::new(&url),
        };
        let (device_id, signing_key) = (store.device_id()?, store.signing_key()?);
        let pinned = Pinned { verifying_key: &authority_key, public_key: &public_key };
        let keys = client.request_key_pinned(pinned, &device_id, &signing_key, &mut rand_core::OsRng)?;
        store.save_renewal(&keys.user_key, &keys.credential, &keys.statement)?;
        Ok(())
    }
}
