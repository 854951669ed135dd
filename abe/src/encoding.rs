//! Versioned binary encodings (normative spec: `docs/format.md`).
//!
//! Every object starts with `"SMQA" ‖ version (0x01) ‖ kind`. Points are compressed (G1 48 B, G2 96 B),
//! scalars are 32-byte little-endian, GT elements 576 bytes. Decoders are total: they validate every point
//! (on the curve, in the prime-order subgroup, not the identity), require canonical encodings (re-encoding
//! must give the same bytes), bound every length, and reject trailing bytes.

use ark_bls12_381::{Fr, G1Affine, G2Affine};
use ark_ec::AffineRepr;
use ark_ff::Zero;
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};

use crate::decompress;
use crate::error::{Error, Limit, Result};
use crate::keys::{Capsule, Gt, MasterKey, ParamsId, PublicKey, UserKey};
use crate::label::Label;
use crate::limits::{MAX_OBJECT_LEN, MAX_POLICY_LEN};
use crate::lsss::Lsss;
#[allow(unused_imports)]
use crate::parallel::*;
use crate::policy::{AttributeSet, Policy};

/// The four magic bytes that start every encoded object.
pub const MAGIC: &[u8; 4] = b"SMQA";
/// The format version this crate writes and reads.
pub const VERSION: u8 = 0x01;

/// Object kinds (the sixth byte of every encoding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    PublicKey = 0x01,
    MasterKey = 0x02,
    UserKey = 0x03,
    Capsule = 0x04,
    Sealed = 0x05,
}

const G1_LEN: usize = 48;
const G2_LEN: usize = 96;
const GT_LEN: usize = 576;
const FR_LEN: usize = 32;

pub(crate) fn header(kind: Kind) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(kind as u8);
    out
}

fn put<T: CanonicalSerialize>(out: &mut Vec<u8>, value: &T) {
    if value.serialize_compressed(&mut *out).is_err() {
        unreachable!("serialising into a Vec cannot fail");
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // Every length we write is bounded by MAX_OBJECT_LEN.
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
}

pub(crate) fn public_key_bytes(pk: &PublicKey) -> Vec<u8> {
    let mut out = header(Kind::PublicKey);
    put(&mut out, &pk.h1);
    put(&mut out, &pk.h2);
    put(&mut out, &pk.t1);
    put(&mut out, &pk.t2);
    out
}

pub(crate) fn g2_triple_bytes(points: &[G2Affine; 3]) -> [u8; 3 * G2_LEN] {
    let mut out = [0u8; 3 * G2_LEN];
    for (chunk, p) in out.chunks_exact_mut(G2_LEN).zip(points) {
        if p.serialize_compressed(chunk).is_err() {
            unreachable!("a G2 point is 96 bytes compressed");
        }
    }
    out
}

pub(crate) fn capsule_bytes(c: &Capsule) -> Vec<u8> {
    let policy = c.policy.to_string();
    let mut out = header(Kind::Capsule);
    out.extend_from_slice(c.params.as_bytes());
    put_len(&mut out, policy.len());
    out.extend_from_slice(policy.as_bytes());
    c.ct0.iter().for_each(|p| put(&mut out, p));
    put_len(&mut out, c.rows.len());
    c.rows.iter().flatten().for_each(|p| put(&mut out, p));
    out.extend_from_slice(&c.masked_seed);
    out
}

/// A canonical, validated, non-identity G1 point from exactly 48 bytes. Decompression (flags, x < p, on the
/// curve, subgroup) is `decompress::g1_from_compressed`, which accepts exactly what arkworks'
/// `deserialize_compressed` accepts; re-encoding then double-checks the flag handling.
fn decode_g1(bytes: &[u8]) -> core::result::Result<G1Affine, &'static str> {
    const INVALID: &str = "invalid G1 point (not on the curve or not in the subgroup)";
    let array: &[u8; G1_LEN] = bytes.try_into().map_err(|_| INVALID)?;
    let p = decompress::g1_from_compressed(array).ok_or(INVALID)?;
    let mut again = [0u8; G1_LEN];
    if p.serialize_compressed(&mut again[..]).is_err() || again != bytes {
        return Err("non-canonical encoding");
    }
    if p.is_zero() {
        return Err("identity point");
    }
    Ok(p)
}

/// A canonical, validated, non-identity G2 point from exactly 96 bytes (see [`decode_g1`]).
fn decode_g2(bytes: &[u8]) -> core::result::Result<G2Affine, &'static str> {
    const INVALID: &str = "invalid G2 point (not on the curve or not in the subgroup)";
    let array: &[u8; G2_LEN] = bytes.try_into().map_err(|_| INVALID)?;
    let p = decompress::g2_from_compressed(array).ok_or(INVALID)?;
    let mut again = [0u8; G2_LEN];
    if p.serialize_compressed(&mut again[..]).is_err() || again != bytes {
        return Err("non-canonical encoding");
    }
    if p.is_zero() {
        return Err("identity point");
    }
    Ok(p)
}

/// Inside an encoded object, a bad embedded policy or attribute list makes the object malformed; bounds keep
/// their own error so callers can tell size problems apart.
fn policy_error(r: &Reader<'_>, e: Error, reason: &'static str) -> Error {
    match e {
        Error::LimitExceeded { .. } => e,
        _ => r.bad(reason),
    }
}

/// A bounded reader over untrusted bytes.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Checks the size bound, magic, version and kind.
    pub(crate) fn open(bytes: &'a [u8], kind: Kind, what: &'static str) -> Result<Reader<'a>> {
        if bytes.len() > MAX_OBJECT_LEN && kind != Kind::Sealed {
            return Err(Error::LimitExceeded { what: Limit::EncodedLength, limit: MAX_OBJECT_LEN });
        }
        let mut r = Reader { bytes, what };
        if r.take(4)? != MAGIC {
            return Err(r.bad("not an SMQTT ABE object (bad magic)"));
        }
        if r.take(1)? != [VERSION] {
            return Err(r.bad("unsupported version"));
        }
        if r.take(1)? != [kind as u8] {
            return Err(r.bad("wrong object kind"));
        }
        Ok(r)
    }

    pub(crate) fn bad(&self, reason: &'static str) -> Error {
        Error::Malformed { what: self.what, reason }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(self.bad("truncated"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    pub(crate) fn len_prefixed(&mut self, max: usize) -> Result<&'a [u8]> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(self.bad("length field out of range"));
        }
        self.take(len)
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.bytes)
    }

    pub(crate) fn finish(self) -> Result<()> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.bad("trailing bytes"))
        }
    }

    /// A canonical, validated value: deserialise with validation, then require that re-encoding gives the same
    /// bytes (rules out non-canonical field encodings and stray flag bits).
    fn canonical<T: CanonicalDeserialize + CanonicalSerialize>(
        &mut self,
        len: usize,
        reason: &'static str,
    ) -> Result<T> {
        let bytes = self.take(len)?;
        let value = T::deserialize_compressed(bytes).map_err(|_| self.bad(reason))?;
        let mut again = Vec::with_capacity(len);
        put(&mut again, &value);
        if again != bytes {
            return Err(self.bad("non-canonical encoding"));
        }
        Ok(value)
    }

    pub(crate) fn g1(&mut self) -> Result<G1Affine> {
        let bytes = self.take(G1_LEN)?;
        decode_g1(bytes).map_err(|reason| self.bad(reason))
    }

    /// `count` triples of G1 points, validated in parallel (point validation dominates decoding).
    pub(crate) fn g1_triples(&mut self, count: usize) -> Result<Vec<[G1Affine; 3]>> {
        let len = count.checked_mul(3 * G1_LEN).ok_or_else(|| self.bad("length field out of range"))?;
        let bytes = self.take(len)?;
        let points: core::result::Result<Vec<G1Affine>, &'static str> =
            par_chunks(bytes, G1_LEN).map(decode_g1).collect();
        let points = points.map_err(|reason| self.bad(reason))?;
        Ok(points.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect())
    }

    pub(crate) fn g2(&mut self) -> Result<G2Affine> {
        let bytes = self.take(G2_LEN)?;
        decode_g2(bytes).map_err(|reason| self.bad(reason))
    }

    /// Three G2 points (ct0 or sk0), validated in parallel.
    pub(crate) fn g2_triple(&mut self) -> Result<[G2Affine; 3]> {
        let bytes = self.take(3 * G2_LEN)?;
        let points: core::result::Result<Vec<G2Affine>, &'static str> =
            par_chunks(bytes, G2_LEN).map(decode_g2).collect();
        let points = points.map_err(|reason| self.bad(reason))?;
        Ok([points[0], points[1], points[2]])
    }

    fn gt(&mut self) -> Result<Gt> {
        let x: Gt = self.canonical(GT_LEN, "invalid GT element")?;
        if x.is_zero() {
            return Err(self.bad("identity element"));
        }
        Ok(x)
    }

    fn nonzero_scalar(&mut self) -> Result<Fr> {
        let x: Fr = self.canonical(FR_LEN, "scalar out of range")?;
        if x.is_zero() {
            return Err(self.bad("zero scalar"));
        }
        Ok(x)
    }

    fn params(&mut self) -> Result<ParamsId> {
        Ok(ParamsId(self.array()?))
    }
}

impl PublicKey {
    /// The canonical encoding (1 350 bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        public_key_bytes(self)
    }

    /// Decodes and validates public parameters (subgroup checks on GT cost ≈ 1 ms each).
    ///
    /// # Errors
    /// [`Error::Malformed`] or [`Error::LimitExceeded`] for anything but a canonical, valid encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<PublicKey> {
        let mut r = Reader::open(bytes, Kind::PublicKey, "public key")?;
        let (h1, h2, t1, t2) = (r.g2()?, r.g2()?, r.gt()?, r.gt()?);
        r.finish()?;
        Ok(PublicKey::from_parts(h1, h2, t1, t2))
    }
}

impl MasterKey {
    /// The canonical encoding, in zeroizing memory. Store it only sealed (the authority does).
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut out = zeroize::Zeroizing::new(header(Kind::MasterKey));
        out.extend_from_slice(self.params.as_bytes());
        self.a.iter().chain(&self.b).for_each(|x| put(&mut out, x));
        self.g_d.iter().for_each(|p| put(&mut out, p));
        out
    }

    /// Decodes a master key.
    ///
    /// # Errors
    /// [`Error::Malformed`] for anything but a canonical, valid encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey> {
        let mut r = Reader::open(bytes, Kind::MasterKey, "master key")?;
        let params = r.params()?;
        let a = [r.nonzero_scalar()?, r.nonzero_scalar()?];
        let b = [r.nonzero_scalar()?, r.nonzero_scalar()?];
        let g_d = [r.g1()?, r.g1()?, r.g1()?];
        r.finish()?;
        Ok(MasterKey { a, b, g_d, params })
    }
}

impl UserKey {
    /// The canonical encoding, in zeroizing memory.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let attrs = self.attributes.to_string();
        let mut out = zeroize::Zeroizing::new(header(Kind::UserKey));
        out.extend_from_slice(self.params.as_bytes());
        put_len(&mut out, attrs.len());
        out.extend_from_slice(attrs.as_bytes());
        self.sk0.iter().for_each(|p| put(&mut out, p));
        self.sk_prime.iter().for_each(|p| put(&mut out, p));
        put_len(&mut out, self.parts.len());
        self.parts.iter().flatten().for_each(|p| put(&mut out, p));
        out
    }

    /// Decodes and validates a user key (and prepares its pairing lines).
    ///
    /// # Errors
    /// [`Error::Malformed`] or [`Error::LimitExceeded`] for anything but a canonical, valid encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<UserKey> {
        let mut r = Reader::open(bytes, Kind::UserKey, "user key")?;
        let params = r.params()?;
        let text = r.len_prefixed(MAX_OBJECT_LEN)?;
        let text = core::str::from_utf8(text).map_err(|_| r.bad("attribute list is not UTF-8"))?;
        let attributes = AttributeSet::parse(text).map_err(|e| policy_error(&r, e, "attribute list does not parse"))?;
        if attributes.to_string() != text {
            return Err(r.bad("attribute list is not canonical"));
        }
        let labels = Label::for_key(&attributes);
        let sk0 = r.g2_triple()?;
        let sk_prime = [r.g1()?, r.g1()?, r.g1()?];
        if r.u32()? as usize != labels.len() {
            return Err(r.bad("key part count does not match the attributes"));
        }
        let parts = r.g1_triples(labels.len())?;
        r.finish()?;
        Ok(UserKey::assemble(attributes, labels, sk0, parts, sk_prime, params))
    }
}

impl Capsule {
    /// The canonical encoding (`288 + 144·rows` bytes plus the policy and a 78-byte header).
    pub fn to_bytes(&self) -> Vec<u8> {
        capsule_bytes(self)
    }

    /// Decodes and validates a capsule: canonical policy, row count equal to the policy's LSSS rows, every
    /// point validated.
    ///
    /// # Errors
    /// [`Error::Malformed`], [`Error::LimitExceeded`] or a policy error for anything but a canonical, valid
    /// encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Capsule> {
        let mut r = Reader::open(bytes, Kind::Capsule, "capsule")?;
        let params = r.params()?;
        let text = r.len_prefixed(MAX_POLICY_LEN)?;
        let text = core::str::from_utf8(text).map_err(|_| r.bad("policy is not UTF-8"))?;
        let policy = Policy::parse(text).map_err(|e| policy_error(&r, e, "policy does not parse"))?;
        if policy.to_string() != text {
            return Err(r.bad("policy is not in canonical form"));
        }
        let lsss = Lsss::new(&policy)
            .map_err(|e| policy_error(&r, e, "policy cannot be shared (duplicate or unsatisfiable)"))?;
        let ct0 = r.g2_triple()?;
        if r.u32()? as usize != lsss.labels().len() {
            return Err(r.bad("row count does not match the policy"));
        }
        let rows = r.g1_triples(lsss.labels().len())?;
        let masked_seed = r.array()?;
        r.finish()?;
        let digest = crate::kdf::sha256(bytes);
        Ok(Capsule { policy, lsss, ct0, rows, masked_seed, params, digest })
    }

    /// The policy of an encoded capsule, read without decoding or validating a single point: the cheap first
    /// look a receiver takes before it spends [`from_bytes`](Self::from_bytes)' point validation (≈ 0.2 ms a
    /// row) on a capsule its key cannot open anyway. The policy is checked to be canonical; nothing else is, so
    /// a `Ok` here says nothing about whether [`from_bytes`](Self::from_bytes) will accept the capsule.
    ///
    /// # Errors
    /// As [`from_bytes`](Self::from_bytes) for the header and the policy.
    pub fn peek_policy(bytes: &[u8]) -> Result<Policy> {
        let mut r = Reader::open(bytes, Kind::Capsule, "capsule")?;
        r.params()?;
        let text = r.len_prefixed(MAX_POLICY_LEN)?;
        let text = core::str::from_utf8(text).map_err(|_| r.bad("policy is not UTF-8"))?;
        let policy = Policy::parse(text).map_err(|e| policy_error(&r, e, "policy does not parse"))?;
        if policy.to_string() != text {
            return Err(r.bad("policy is not in canonical form"));
        }
        Ok(policy)
    }
}
