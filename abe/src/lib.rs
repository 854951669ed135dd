//! FAME CP-ABE on BLS12-381, the SMQTT policy language, and sealed hybrid ciphertexts.
//!
//! A publisher encrypts under a policy over attributes; only keys whose attributes satisfy it decrypt. The
//! scheme is FAME (Agrawal–Chase, CCS 2017, k = 2, fully secure under DLIN in the random-oracle model) in its
//! native Type-III placement on BLS12-381, used as a KEM: [`PublicKey::encapsulate`] yields a 32-byte
//! [`DataKey`] and a [`Capsule`]; [`UserKey::decapsulate`] recovers the key. [`seal`] wraps that into a one-shot
//! hybrid ciphertext with ChaCha20-Poly1305. The crate does no I/O. Formats: `docs/format.md`.
//!
//! ```
//! use smqtt_abe::{setup, AttributeSet, Error, Policy};
//!
//! let mut rng = rand_core::OsRng;
//! let (pk, msk) = setup(&mut rng)?;
//! let operator = msk.keygen(&pk, &AttributeSet::parse("role:operator, site:berlin, level = 5")?, &mut rng)?;
//! let intern = msk.keygen(&pk, &AttributeSet::parse("role:intern, site:berlin, level = 1")?, &mut rng)?;
//!
//! let policy = Policy::parse("(role:operator or role:admin) and level >= 3")?;
//! let (data_key, capsule) = pk.encapsulate(&policy, &mut rng)?;
//! let wire = capsule.to_bytes();
//!
//! let received = smqtt_abe::Capsule::from_bytes(&wire)?;
//! assert_eq!(operator.decapsulate(&pk, &received)?, data_key);
//! assert_eq!(intern.decapsulate(&pk, &received), Err(Error::PolicyNotSatisfied));
//! # Ok::<(), Error>(())
//! ```
//!
//! # Design decisions
//!
//! * **Hashing.** Every hash to G1 is RFC 9380 `hash_to_curve` (random-oracle suite) with our own DST, applied to
//!   tagged, length-prefixed inputs in three disjoint families (attribute, column, numeric bit), so no attribute
//!   name (`"01"`, `"0 0"`, …) can reach the key's constant hashes — the bug that let one attribute decrypt
//!   everything in Charm, rabe and GoFE.
//! * **Attribute re-use is refused.** A policy in which one label (attribute, or bit of a numeric attribute)
//!   labels two rows is rejected with [`Error::DuplicateAttribute`]. FAME's proof is stated for arbitrary
//!   (M, ρ), but peers disagree (GoFE rejects non-injective ρ citing the proof; Charm forbids it; rabe silently
//!   fails), and we would rather refuse than rest on a disputed argument. Factor instead: `a and (b or c)`.
//!   Comparisons `x > a and x < b` on one attribute are fine: `>` only tests bits equal to 1 and `<` only
//!   bits equal to 0, so their labels never collide.
//! * **CCA.** FAME is CPA-secure. We apply a Fujisaki–Okamoto-style transform in the manner of OpenABE: the
//!   encryption coins (s1, s2) are derived from a random seed and the policy; the seed travels masked by a KDF of
//!   K; decapsulation unmasks it with the K′ it computed, re-derives the coins and requires that they reproduce
//!   **ct0** exactly; the data key is derived from (K, seed, SHA-256 of the whole capsule). We do not re-encrypt
//!   the rows. Argument (random-oracle model): a capsule passes the check only if its ct0 equals the encryption of
//!   coins H(seed′, policy) for the seed′ the key recovered, which (except with negligible probability) needs the
//!   adversary to have queried H at seed′ — so it knows s1, s2 and hence K′ = s1·T1 + s2·T2: the answer of a
//!   decapsulation oracle is computable without the key, apart from whether the rows the key used combine to the
//!   honest value, and a ciphertext with malformed rows behaves exactly like an honest ciphertext under the
//!   policy restricted to its well-formed rows, which the adversary could have made itself. Rows the key did not
//!   use cannot be altered without changing the capsule digest and so the data key, which the AEAD then rejects.
//!   Cost: three fixed-base G2 multiplications (measured in `benches/`, see the README), instead of a full
//!   re-encryption (≈ one encryption per decryption).
//! * **Validation.** Decoders check every point (on curve, prime-order subgroup, not the identity) and require
//!   canonical bytes; points are decoded in parallel because this dominates decoding.
//! * **Key generation caches.** The process keeps bounded caches that depend only on public inputs: hash points
//!   of labels (at most 8 192 labels, ≈ 5 MB) and, for labels that recur, fixed-base window tables of those
//!   points (396 KiB per label, at most 64 MiB in all, least recently used evicted first; a table is built only
//!   after the label was issued a few times without one, and less eagerly when tables are evicted before they
//!   pay off). With the tables a warm 10-attribute key costs about half the CPU time of the plain path; keys are
//!   bit for bit the same either way.
//! * **Randomness** is always supplied by the caller (`RngCore + CryptoRng`, rand_core 0.6 as in arkworks 0.6);
//!   [`rand_core::OsRng`] is the default for real use, seeded RNGs for tests. The AEAD (on rand_core 0.10) never
//!   receives an RNG: its keys and nonces are derived.
//!
//! # Security notes
//!
//! * **Not constant time.** arkworks does not claim constant-time arithmetic: scalar multiplication (GLV,
//!   double-and-add, our Straus MSM, fixed-base window tables, and the per-label tables key generation caches
//!   for recurring attributes) branches on and indexes by secret bits, and so do pairings' inputs. Key
//!   generation runs on the authority only; decapsulation handles the user key's secrets on the user's device.
//!   Which labels have cached tables (and so how fast a key is issued) depends only on public attribute names.
//!   Comparisons of secrets (the FO check, [`DataKey`] equality) are constant time.
//! * **Zeroization.** [`MasterKey`], [`UserKey`] and [`DataKey`] zeroize on drop and print redacted. Copies that
//!   arkworks makes internally (stack temporaries, `Copy` field elements) cannot be zeroized.
//! * **Policies are public.** A capsule carries its policy in clear; a broker sees attribute names.
//! * **Security level.** BLS12-381 gives about 117–120 bits (after the exTNFS improvements), FAME is fully secure
//!   under DLIN in the random-oracle model.
#![warn(missing_docs)]

mod decompress;
pub mod encoding;
pub mod error;
mod fame;
mod fixed_base;
mod hash;
#[cfg(feature = "hazmat")]
pub mod hazmat;
mod kdf;
mod keys;
mod label;
mod label_tables;
pub mod limits;
mod lsss;
mod msm;
mod parallel;
pub mod policy;
pub mod seal;

pub use error::{Error, Limit, Result};
pub use fame::setup;
pub use keys::{Capsule, DataKey, MasterKey, ParamsId, PublicKey, UserKey};
pub use policy::{Attribute, AttributeSet, CompareOp, KeyAttribute, Policy};
