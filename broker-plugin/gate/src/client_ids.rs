//! Client-id spaces: which MQTT client ids each kind of identity may connect with.
//!
//! An MQTT broker keys sessions by client id alone: whoever connects with a client id disconnects the live
//! connection of that id and, with `clean_session = false`, resumes its session (its subscriptions and the
//! messages queued for it). So the gate binds every client id to one identity:
//!
//! | identity | may use |
//! |---|---|
//! | device (CONNECT token) | `<device_id>`, `<device_id>/<suffix>` |
//! | legacy client (`[[legacy]]`) | `legacy:<username>`, `legacy:<username>/<suffix>` |
//! | anonymous client | `anon:<anything>` |
//!
//! Suffixes and the rest after `anon:` are non-empty. The spaces are disjoint: device ids
//! ([`smqtt_wire::DeviceId`]) contain neither `:` nor `/`, so no device owns an id with a `:` and the part
//! before the first `/` names the device; legacy usernames may not contain `/` (a configuration error), so
//! the part of a `legacy:` id before its first `/` names the user.

/// The prefix of every anonymous client id.
pub const ANONYMOUS_PREFIX: &str = "anon:";
/// The prefix of every legacy client's client id (followed by its username).
pub const LEGACY_PREFIX: &str = "legacy:";

/// `client_id` is `owner` or `owner/<non-empty suffix>`.
fn owned_by(client_id: &str, owner: &str) -> bool {
    match client_id.strip_prefix(owner) {
        Some("") => true,
        Some(rest) => rest.strip_prefix('/').is_some_and(|suffix| !suffix.is_empty()),
        None => false,
    }
}

/// Whether the device `device_id` may connect as `client_id`.
pub(crate) fn device_owns(device_id: &str, client_id: &str) -> bool {
    !device_id.is_empty() && owned_by(client_id, device_id)
}

/// Whether the legacy client `username` may connect as `client_id`.
pub(crate) fn legacy_owns(username: &str, client_id: &str) -> bool {
    !username.is_empty() && client_id.strip_prefix(LEGACY_PREFIX).is_some_and(|rest| owned_by(rest, username))
}

/// Whether an anonymous client may connect as `client_id`.
pub(crate) fn anonymous_owns(client_id: &str) -> bool {
    client_id.strip_prefix(ANONYMOUS_PREFIX).is_some_and(|rest| !rest.is_empty())
}

/// A fresh anonymous client id, `anon:` and 32 random hex digits: for brokers that assign an id to an anonymous
/// client that sent an empty one (Mosquitto does this itself with `auto_id_prefix anon:`).
pub fn anonymous_client_id() -> String {
    use rand_core::RngCore as _;
    let mut random = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut random);
    let mut id = String::with_capacity(ANONYMOUS_PREFIX.len() + 32);
    id.push_str(ANONYMOUS_PREFIX);
    for byte in random {
        id.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        id.push(char::from(b"0123456789abcdef"[usize::from(byte & 0x0f)]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces() {
        assert!(device_owns("bob", "bob") && device_owns("bob", "bob/x") && device_owns("bob", "bob/x/y"));
        for foreign in ["", "bob/", "bobby", "bo", "bob.x", "anon:bob", "legacy:bob", "Bob", "x/bob"] {
            assert!(!device_owns("bob", foreign), "{foreign:?}");
        }
        assert!(!device_owns("", ""));
        assert!(legacy_owns("meter-1", "legacy:meter-1") && legacy_owns("meter-1", "legacy:meter-1/b"));
        for foreign in ["meter-1", "legacy:", "legacy:meter-1/", "legacy:meter-10", "anon:meter-1", "legacy:meter"] {
            assert!(!legacy_owns("meter-1", foreign), "{foreign:?}");
        }
        assert!(anonymous_owns("anon:x") && anonymous_owns("anon:a/b"));
        assert!(!anonymous_owns("anon:") && !anonymous_owns("bob") && !anonymous_owns("") && !anonymous_owns("Anon:x"));
        let (a, b) = (anonymous_client_id(), anonymous_client_id());
        assert!(anonymous_owns(&a) && a.len() == 37 && a != b, "{a} {b}");
    }
}
