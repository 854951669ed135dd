//! Who is connected: the result of [`Gate::authenticate`](crate::Gate::authenticate).

use std::sync::{Arc, Mutex, PoisonError};

use smqtt_wire::{BatchRoots, TopicFilter, VerifiedCredential};

/// Batch roots (`docs/wire.md` §6.6) remembered per connection: its publisher's recent bursts.
const ROOTS_PER_SESSION: usize = 8;

/// What a connected client is.
#[derive(Clone, Debug)]
#[non_exhaustive]
// One per connection, made once at CONNECT and shared behind an `Arc`: the device variant's size (its credential
// keeps the device's Ed25519 key decompressed, for verifying every envelope) costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Role {
    /// A device with a verified authority credential (via a CONNECT token).
    Device(VerifiedCredential),
    /// A configured legacy client (username and password), publishing plaintext the broker seals.
    Legacy {
        /// Its username.
        username: String,
        /// Topic filters it may publish to.
        publish: Vec<TopicFilter>,
    },
    /// No credentials, allowed read-only by `[anonymous] allow = true`.
    Anonymous,
    /// Accepted without checks because enforcement is off for the whole gate.
    Unchecked,
}

impl Role {
    /// A stable name: `device`, `legacy`, `anonymous`, `unchecked`.
    pub fn kind(&self) -> &'static str {
        match self {
            Role::Device(_) => "device",
            Role::Legacy { .. } => "legacy",
            Role::Anonymous => "anonymous",
            Role::Unchecked => "unchecked",
        }
    }
}

#[derive(Debug)]
struct Inner {
    client_id: String,
    username: Option<String>,
    role: Role,
    /// Batch roots whose signature verified on this connection: the rest of a burst costs hashing only.
    roots: Mutex<BatchRoots>,
}

/// A connected client as the gate sees it. Cheap to clone (shared), `Send + Sync`.
#[derive(Clone)]
pub struct ClientSession(Arc<Inner>);

impl ClientSession {
    pub(crate) fn new(client_id: &str, username: Option<&str>, role: Role) -> ClientSession {
        ClientSession(Arc::new(Inner {
            client_id: client_id.to_owned(),
            username: username.map(str::to_owned),
            role,
            roots: Mutex::new(BatchRoots::new(ROOTS_PER_SESSION)),
        }))
    }

    /// The MQTT client id it connected with.
    pub fn client_id(&self) -> &str {
        &self.0.client_id
    }

    /// The MQTT username it connected with.
    pub fn username(&self) -> Option<&str> {
        self.0.username.as_deref()
    }

    /// Whether `other` is this very session (not merely one with the same client id).
    pub(crate) fn same(&self, other: &ClientSession) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Runs `f` with this connection's verified batch roots (one connection's publishes are checked one at a
    /// time, so the lock is not contended).
    pub(crate) fn with_roots<R>(&self, f: impl FnOnce(&mut BatchRoots) -> R) -> R {
        f(&mut self.0.roots.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// What it is.
    pub fn role(&self) -> &Role {
        &self.0.role
    }

    /// The device id, for a device.
    pub fn device_id(&self) -> Option<&str> {
        match &self.0.role {
            Role::Device(credential) => Some(credential.body().device_id.as_str()),
            _ => None,
        }
    }

    /// The verified credential, for a device.
    pub fn credential(&self) -> Option<&VerifiedCredential> {
        match &self.0.role {
            Role::Device(credential) => Some(credential),
            _ => None,
        }
    }
}

impl core::fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientSession")
            .field("client_id", &self.0.client_id)
            .field("role", &self.0.role.kind())
            .field("device", &self.device_id())
            .finish()
    }
}
