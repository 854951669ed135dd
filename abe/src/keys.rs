//! Key and ciphertext types. Secrets are non-`Copy`, zeroize on drop and print redacted.

use std::collections::HashMap;
use std::sync::OnceLock;

use ark_bls12_381::{Bls12_381, Fr, G1Affine, G2Affine, G2Projective};
use ark_ec::bls12::G2Prepared;
use ark_ec::pairing::PairingOutput;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::fixed_base::FixedBase;
use crate::label::Label;
use crate::lsss::Lsss;
use crate::policy::{AttributeSet, Policy};

pub(crate) type Gt = PairingOutput<Bls12_381>;
pub(crate) type Prepared = G2Prepared<ark_bls12_381::Config>;

/// Identifies a parameter set: SHA-256 of the public key's encoding. Keys and ciphertexts carry it so that a
/// mismatch is reported as such instead of as a failed decryption.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamsId(pub(crate) [u8; 32]);

impl ParamsId {
    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl core::fmt::Debug for ParamsId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ParamsId({self})")
    }
}

impl core::fmt::Display for ParamsId {
    /// The first 8 bytes in hex, enough to tell parameter sets apart in messages.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0[..8].iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// FAME public parameters: H1, H2 ∈ G2 and T1, T2 ∈ GT (h and g are the standard generators).
pub struct PublicKey {
    pub(crate) h1: G2Affine,
    pub(crate) h2: G2Affine,
    pub(crate) t1: Gt,
    pub(crate) t2: Gt,
    pub(crate) id: ParamsId,
    pub(crate) tables: OnceLock<PublicTables>,
    /// Operations run on the plain path so far (the tables are built once a key has proven busy).
    pub(crate) uses: core::sync::atomic::AtomicU32,
}

/// Fixed-base tables for a public key's bases, built on first use.
pub(crate) struct PublicTables {
    pub(crate) h1: FixedBase<G2Projective>,
    pub(crate) h2: FixedBase<G2Projective>,
    pub(crate) t1: FixedBase<Gt>,
    pub(crate) t2: FixedBase<Gt>,
}

impl core::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PublicKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl PublicKey {
    /// This parameter set's id.
    pub fn id(&self) -> ParamsId {
        self.id
    }

    pub(crate) fn tables(&self) -> &PublicTables {
        self.tables.get_or_init(|| PublicTables {
            h1: FixedBase::new(G2Projective::from(self.h1)),
            h2: FixedBase::new(G2Projective::from(self.h2)),
            t1: FixedBase::new(self.t1),
            t2: FixedBase::new(self.t2),
        })
    }
}

/// The FAME master secret: a1, a2, b1, b2 ∈ Z_p and g^{d1}, g^{d2}, g^{d3} ∈ G1. Only the authority holds it.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    pub(crate) a: [Fr; 2],
    pub(crate) b: [Fr; 2],
    pub(crate) g_d: [G1Affine; 3],
    #[zeroize(skip)]
    pub(crate) params: ParamsId,
}

impl core::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MasterKey").field("params", &self.params).finish_non_exhaustive()
    }
}

impl MasterKey {
    /// The parameter set this master key belongs to.
    pub fn params_id(&self) -> ParamsId {
        self.params
    }
}

/// A user's attribute key: sk0 ∈ G2³, three G1 parts per label and sk' ∈ G1³, plus sk0's prepared pairing
/// lines (computed on the first decapsulation, reused by every later one; the authority, which issues keys but
/// never decapsulates with them, so never pays for them).
pub struct UserKey {
    pub(crate) attributes: AttributeSet,
    /// The labels of `parts`, in order (read only by `hazmat`'s forced decapsulation).
    #[cfg_attr(not(feature = "hazmat"), allow(dead_code))]
    pub(crate) labels: Vec<Label>,
    pub(crate) index: HashMap<Label, usize>,
    pub(crate) sk0: [G2Affine; 3],
    pub(crate) parts: Vec<[G1Affine; 3]>,
    pub(crate) sk_prime: [G1Affine; 3],
    prepared: OnceLock<[Prepared; 3]>,
    pub(crate) params: ParamsId,
}

impl UserKey {
    /// The attributes this key was issued for (public information).
    pub fn attributes(&self) -> &AttributeSet {
        &self.attributes
    }

    /// The parameter set this key belongs to.
    pub fn params_id(&self) -> ParamsId {
        self.params
    }

    /// Whether this key's attributes satisfy `policy` (public check, no cryptography).
    pub fn satisfies(&self, policy: &Policy) -> bool {
        policy.is_satisfied_by(&self.attributes)
    }

    pub(crate) fn assemble(
        attributes: AttributeSet,
        labels: Vec<Label>,
        sk0: [G2Affine; 3],
        parts: Vec<[G1Affine; 3]>,
        sk_prime: [G1Affine; 3],
        params: ParamsId,
    ) -> UserKey {
        let index = labels.iter().enumerate().map(|(i, l)| (l.clone(), i)).collect();
        UserKey { attributes, labels, index, sk0, parts, sk_prime, prepared: OnceLock::new(), params }
    }

    /// sk0's prepared pairing lines, computed on first use.
    pub(crate) fn prepared(&self) -> &[Prepared; 3] {
        self.prepared.get_or_init(|| self.sk0.map(Prepared::from))
    }
}

impl Drop for UserKey {
    fn drop(&mut self) {
        self.sk0.zeroize();
        self.parts.zeroize();
        self.sk_prime.zeroize();
        for p in self.prepared.get_mut().into_iter().flatten() {
            p.ell_coeffs.zeroize();
        }
    }
}

impl ZeroizeOnDrop for UserKey {}

impl core::fmt::Debug for UserKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UserKey")
            .field("attributes", &self.attributes.to_string())
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// A FAME key encapsulation: the policy, ct0 ∈ G2³, three G1 elements per row, and the masked FO seed.
#[derive(Clone)]
pub struct Capsule {
    pub(crate) policy: Policy,
    pub(crate) lsss: Lsss,
    pub(crate) ct0: [G2Affine; 3],
    pub(crate) rows: Vec<[G1Affine; 3]>,
    pub(crate) masked_seed: [u8; 32],
    pub(crate) params: ParamsId,
    /// SHA-256 of the capsule's canonical encoding; the data key is bound to it.
    pub(crate) digest: [u8; 32],
}

impl Capsule {
    /// The policy a key must satisfy (public).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The parameter set it was made under.
    pub fn params_id(&self) -> ParamsId {
        self.params
    }

    /// Number of LSSS rows (a comparison counts one row per bit it tests).
    pub fn rows(&self) -> usize {
        self.rows.len()
    }
}

impl core::fmt::Debug for Capsule {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Capsule")
            .field("policy", &self.policy.to_string())
            .field("rows", &self.rows.len())
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// The 32-byte secret a capsule carries: feed it to an AEAD (see [`crate::seal`]) or derive session keys from it.
/// Zeroized on drop, redacted in `Debug`, compared in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; 32]);

impl DataKey {
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> DataKey {
        DataKey(bytes)
    }

    /// The key bytes. Handle with care: copy them only into zeroizing storage.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }

    /// A zeroizing copy of the key bytes.
    pub fn to_zeroizing(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0)
    }
}

impl PartialEq for DataKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for DataKey {}

impl core::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}
