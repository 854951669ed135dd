//! Credentials that connected devices renewed in place. A device that renews at an epoch change keeps its MQTT
//! connection (the SDK installs the new credential without reconnecting), and its next session's first envelope
//! carries the new credential. The gate then enforces that credential for the connection instead of the one the
//! CONNECT token presented — only if it is signed by the authority, names the same device id *and* device key as
//! the connection's, and is of a newer epoch. At most one per device id, a bounded number in all.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use smqtt_wire::{Credential, ParsedEnvelope, VerifiedCredential, VerifyingKey};

#[derive(Default)]
struct Table {
    by_device: HashMap<String, VerifiedCredential>,
    order: VecDeque<String>,
}

/// Renewed credentials by device id, bounded.
pub(crate) struct Renewals {
    table: Mutex<Table>,
    max: usize,
}

fn same_device(a: &VerifiedCredential, b: &VerifiedCredential) -> bool {
    a.body().device_id == b.body().device_id && a.body().device_key == b.body().device_key
}

impl Renewals {
    pub(crate) fn new(max: usize) -> Renewals {
        Renewals { table: Mutex::new(Table::default()), max: max.max(1) }
    }

    /// A renewal of `connected`'s device of at least `epoch` already seen, if any.
    pub(crate) fn known(&self, connected: &VerifiedCredential, epoch: u64, now: u64) -> Option<VerifiedCredential> {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let known = table.by_device.get(connected.body().device_id.as_str())?;
        (same_device(known, connected) && known.body().epoch >= epoch && now < known.body().not_after)
            .then(|| known.clone())
    }

    /// The credential to enforce for a connection authenticated with `connected` while `epoch` is in force: a
    /// renewal of the same device of at least that epoch (known, or carried by `payload`), else `connected`.
    pub(crate) fn effective(
        &self,
        connected: &VerifiedCredential,
        epoch: u64,
        payload: &[u8],
        authority: Option<&VerifyingKey>,
        now: u64,
    ) -> Option<VerifiedCredential> {
        if connected.body().epoch >= epoch {
            return None;
        }
        let id = connected.body().device_id.as_str();
        if let Some(known) = self.known(connected, epoch, now) {
            return Some(known);
        }
        let carried = ParsedEnvelope::parse(payload).ok()?.credential()?;
        let renewed = Credential::verify(carried, authority?, now).ok()?;
        if !same_device(&renewed, connected) || renewed.body().epoch < epoch {
            return None;
        }
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if table.by_device.insert(id.to_owned(), renewed.clone()).is_none() {
            table.order.push_back(id.to_owned());
        }
        while table.by_device.len() > self.max {
            let Some(oldest) = table.order.pop_front() else { break };
            table.by_device.remove(&oldest);
        }
        Some(renewed)
    }
}
