//! The gate's check of an SMQTT envelope on a protected topic: structure, publisher, retained mark, signature.

use smqtt_wire::{BatchRoots, ParsedEnvelope, VerifiedCredential};

use crate::refusal::{Refusal, RefusalReason};

fn refuse(reason: RefusalReason, message: impl Into<String>) -> Refusal {
    Refusal::new(reason, message)
}

/// A well-formed envelope whose publisher is the connected device and whose signature verifies for `topic` with
/// its key (structure and one Ed25519 verification: no ABE; for a batch-signed envelope whose root is in `roots`,
/// hashing only, wire.md §6.6). Where `unsigned_ok`, an unsigned envelope
/// (wire.md §6.5) passes on structure and publisher alone: the connection is authenticated as its publisher,
/// and only the subscribers' AEAD check can vouch for the rest.
///
/// Without `verify`, a signed envelope passes on structure and publisher too (`[topics] verify_signatures =
/// false`): the connection is authenticated as the device the envelope names, so a bad signature can only be
/// that device's own, and every SMQTT subscriber verifies it anyway (`bad_signature`); what the gate gives up
/// is filtering such envelopes (and counting them) before they are forwarded or retained.
///
/// With `retain` (the MQTT retain flag), the envelope must be sealed for retained publication (flags bit 3,
/// wire.md §6.4): subscribers refuse a retained delivery without the mark, so the broker must not store one.
pub(crate) fn check_envelope(
    credential: &VerifiedCredential,
    topic: &str,
    payload: &[u8],
    retain: bool,
    unsigned_ok: bool,
    verify: bool,
    roots: &mut BatchRoots,
) -> Result<(), Refusal> {
    let envelope = ParsedEnvelope::parse(payload)
        .map_err(|e| refuse(RefusalReason::NotAnEnvelope, format!("not an SMQTT envelope: {e}")))?;
    let device = &credential.body().device_id;
    if envelope.publisher() != device {
        return Err(refuse(
            RefusalReason::ForeignSigner,
            format!("envelope by {}, connected as {device}", envelope.publisher()),
        ));
    }
    if !envelope.is_signed() {
        return if unsigned_ok {
            Ok(())
        } else {
            Err(refuse(RefusalReason::Unsigned, "unsigned envelopes are not accepted on this topic"))
        };
    }
    if retain && !envelope.is_sealed_retained() {
        return Err(refuse(
            RefusalReason::RetainNotSealed,
            "a retained publish whose envelope is not sealed for retained publication",
        ));
    }
    if !verify {
        return Ok(());
    }
    envelope
        .verify_signature_cached(topic, &credential.body().device_key, roots)
        .map(|_verified| ())
        .map_err(|_| refuse(RefusalReason::BadSignature, "envelope signature does not verify for this topic"))
}
