//! SMQTT broker-side enforcement: a broker-independent gate that decides CONNECT, SUBSCRIBE, PUBLISH and wills.
//!
//! No I/O beyond reading its configuration and the files it names (the authority's verifying key, an epoch file,
//! the broker's own device store). The embedded broker (`smqtt-broker`, rumqttd) and the Mosquitto plugin
//! (`smqtt-mosquitto`) both call it; it never decrypts and never needs the authority online.
//!
//! * **CONNECT** ([`Gate::authenticate`]): a device presents username = device id, password = a CONNECT token
//!   ([`smqtt_wire::ConnectToken`]); the token's credential must be signed by the authority, valid now, of the
//!   current epoch or later (`min_epoch`, `epoch_file`), and not denied. Legacy clients log in with a username
//!   and an Argon2-hashed password; anonymous clients may connect read-only where configured.
//! * **Client ids** ([`Gate::authenticate`]): each identity has its own client-id space, so no client can take
//!   over, resume (`clean_session = false`: subscriptions, queued messages) or disconnect another identity's
//!   session. A device may use `<device_id>` or `<device_id>/<suffix>`; a legacy client `legacy:<username>` or
//!   `legacy:<username>/<suffix>`; an anonymous client only `anon:<…>` ([`ANONYMOUS_PREFIX`],
//!   [`LEGACY_PREFIX`]; suffixes non-empty). Anything else is refused (`client_id_not_owned`, MQTT 5 0x85,
//!   v3.1.1 2 "identifier rejected") even with a valid credential. Device ids contain neither `:` nor `/` and
//!   legacy usernames no `/`, so the spaces are disjoint. The id checked is the one the broker keys sessions by:
//!   for an empty client id, Mosquitto assigns `<auto_id_prefix><uuid>` first (set `auto_id_prefix anon:` for
//!   anonymous clients without an id); the embedded broker gives an anonymous client with an empty id and a
//!   clean session [`anonymous_client_id`]. With `enforcement = false` client ids are not checked.
//! * **PUBLISH** ([`Gate::check_publish`]): only on topics the credential grants. On *protected* topics only
//!   well-formed SMQTT envelopes signed by the connected device itself are accepted (structure and one Ed25519
//!   verification, no pairing); on those of them listed as `unsigned`, envelopes without a signature
//!   (`docs/wire.md` §6.5) also pass when their publisher is the connected device. With
//!   `verify_signatures = false` the gate checks structure and "publisher = connected device" only and leaves
//!   signatures to the subscribers (who verify every one), ≈ 45 µs less per publish: the broker then no longer
//!   filters or counts envelopes with bad signatures (a device's own, or sent with a replayed CONNECT token
//!   within the clock skew) before forwarding or retaining them. On *sealed* topics a legacy client's plaintext is
//!   sealed by the broker under the
//!   topic's policy with the broker's own identity, and [`PublishDecision::Replace`] carries the envelope.
//!   Sizes are bounded; an empty retained publish (which clears a retained message) is always allowed to
//!   those with the right to publish.
//! * **Wills** ([`Gate::check_will`], [`Gate::check_will_for`]): the same rules as a publish by that client.
//! * **SUBSCRIBE** ([`Gate::check_subscribe`]): `deny_subscribe` filters (always, even with enforcement off);
//!   anonymous clients only within their configured filters.
//! * **Metrics** ([`Gate::metrics_text`]): Prometheus counters of accepted and refused decisions by reason.
//!
//! ```
//! use smqtt_abe::AttributeSet;
//! use smqtt_gate::{Gate, PublishDecision, RefusalReason};
//! use smqtt_wire::{ConnectToken, CredentialBody, DeviceId, SigningKey, TopicFilter};
//!
//! let dir = std::env::temp_dir().join(format!("smqtt-gate-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let authority = SigningKey::from_bytes(&[1; 32]);
//! std::fs::write(dir.join("authority.pub"), authority.verifying_key().to_bytes())?;
//! let gate = Gate::from_toml_str(
//!     r#"
//!     [authority]
//!     verifying_key = "authority.pub"
//!     [topics]
//!     protected = ["plant/#"]
//!     "#,
//!     &dir,
//! )?;
//!
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
//! let device = SigningKey::from_bytes(&[2; 32]);
//! let credential = CredentialBody {
//!     device_id: DeviceId::new("sensor-7")?,
//!     device_key: device.verifying_key(),
//!     attributes: AttributeSet::parse("role:sensor")?,
//!     publish: vec![TopicFilter::new("plant/berlin/#")?],
//!     epoch: 1,
//!     not_before: now - 60,
//!     not_after: now + 3600,
//! }
//! .sign(&authority)?;
//! let token = ConnectToken::create(&device, &credential, "sensor-7", now)?;
//!
//! let session = gate.authenticate("sensor-7", Some("sensor-7"), Some(token.as_bytes())).expect("a valid token");
//! assert_eq!(session.device_id(), Some("sensor-7"));
//! // Plaintext on a protected topic, and any publish outside the credential's rights, are refused.
//! let refused = |d: PublishDecision| d.refusal().map(|r| r.reason);
//! assert_eq!(refused(gate.check_publish(&session, "plant/berlin/t", 1, false, b"23.5")), Some(RefusalReason::NotAnEnvelope));
//! assert_eq!(refused(gate.check_publish(&session, "plant/paris/t", 1, false, b"..")), Some(RefusalReason::TopicNotPermitted));
//! // A forged token does not get in.
//! assert!(gate.authenticate("sensor-7", Some("sensor-7"), Some(b"smqtt1.AAAA.AAAA")).is_err());
//! assert!(gate.metrics_text().contains(r#"smqtt_gate_refused_total{check="connect",reason="bad_credential"} 1"#));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The configuration (paths relative to the file; unknown keys are errors):
//!
//! ```toml
//! enforcement = true                    # false: accept every client and publish (conformance runs)
//! [authority]
//! verifying_key = "authority.pub"       # the authority's file (base64) or a device store's (32 raw bytes)
//! min_epoch = 0                         # credentials of older epochs are refused
//! epoch_file = "epoch.statement"        # optional: a signed epoch statement (smqtt-authority epoch statement);
//!                                       # re-read at most every second, or the url's cache when url is set
//! url = "http://127.0.0.1:8740"         # optional, smqtt-broker only: follow the authority itself (GET
//!                                       # /v1/epoch, signed); the Mosquitto plugin: `smqtt follow` + epoch_file
//! epoch_poll_secs = 10                  # how often url is polled
//! clock_skew_secs = 120                 # CONNECT token freshness
//! deny_devices = []                     # device ids refused outright
//! [limits]
//! max_payload = 327680                  # bytes
//! max_sessions = 100000                 # client sessions remembered (connected ones are never evicted)
//! max_sessions_per_identity = 16        # connected client ids per device or legacy username
//! [anonymous]
//! allow = false                         # clients without username and password, read-only, client ids anon:…
//! subscribe = ["public/#"]
//! [topics]
//! protected = ["plant/#"]               # only envelopes signed by the connected device
//! unsigned = ["plant/+/telemetry/#"]    # …or unsigned ones (wire.md §6.5) published by the connected device
//! verify_signatures = true              # false: bind envelopes to the connection, leave signatures to subscribers
//! open = ["test/#"]                     # unchecked: anyone connected may publish and subscribe
//! deny_subscribe = ["test/nosubscribe"] # refused to everyone (any filter some topic of these matches)
//! [sealing]
//! store = "broker-store"                # the broker's device store (`smqtt enroll`), allowed to publish below
//! topics = [{ filter = "legacy/#", policy = "role:operator" }]
//! [[legacy]]                            # client ids legacy:meter-1 or legacy:meter-1/…
//! username = "meter-1"                  # no '/'
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$…"
//! publish = ["legacy/meter-1/#"]
//! ```
//!
//! A topic that matches both a protected or sealed filter and an open filter stays enforced.
//!
//! # Security notes
//!
//! * A CONNECT token is a bearer proof for its client id within the clock skew: use TLS on untrusted networks.
//! * Sealed topics are the one place the broker sees plaintext, by configuration; the broker's device key
//!   signs what it seals, so subscribers know the broker (not the legacy device) vouches for it.
//! * Argon2 runs on the caller's thread. A verified password's SHA-256 is kept in memory so reconnects skip
//!   Argon2 (and are never throttled); failures are throttled per source address and (source, username) with
//!   exponential backoff ([`Gate::authenticate_from`]), never per username alone.
//! * Nothing here panics on any input: every length is bounded before work, every decoder is total
//!   (property-tested in `tests/`).
#![warn(missing_docs)]

mod client_ids;
mod config;
mod envelope_check;
mod epoch;
mod filters;
mod gate;
mod legacy;
mod link;
mod metrics;
mod refusal;
mod registry;
mod renewed;
mod session;
mod throttle;

pub use client_ids::{anonymous_client_id, ANONYMOUS_PREFIX, LEGACY_PREFIX};
pub use config::DEFAULT_MAX_PAYLOAD;
pub use filters::filters_overlap;
pub use gate::Gate;
pub use link::{AuthorityLink, LinkError};
pub use refusal::{GateError, PublishDecision, Refusal, RefusalReason};
pub use session::{ClientSession, Role};
