//! The binary object header and a bounds-checked reader (`docs/wire.md` §2).

use crate::error::{malformed, Result};

/// Bytes of an envelope's key id.
pub(crate) const KEY_ID_LEN: usize = 16;
/// Bytes of an AEAD tag.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes of an Ed25519 signature (envelopes, credentials).
pub(crate) const SIGNATURE_LEN: usize = 64;

/// Bytes an envelope adds to its plaintext when it carries neither capsule nor credential, for a publisher id
/// of `publisher_len` bytes: header (6), flags (1), publisher length (1) and id, key id (16), sequence (8),
/// timestamp (8), ciphertext length (4), tag (16), signature (64) — `124 + publisher_len`. A capsule adds
/// `4 + len(capsule)`, a credential `2 + len(credential)`. An unsigned envelope
/// ([`seal_envelope_unsigned`](crate::seal_envelope_unsigned)) is 64 bytes shorter.
pub const fn envelope_overhead(publisher_len: usize) -> usize {
    6 + 1 + 1 + publisher_len + KEY_ID_LEN + 8 + 8 + 4 + TAG_LEN + SIGNATURE_LEN
}

/// The four bytes every binary object of this crate starts with.
pub const MAGIC: &[u8; 4] = b"SMQW";
/// The format version this crate reads and writes.
pub const VERSION: u8 = 1;
/// The kind byte of a signed credential.
pub const KIND_CREDENTIAL: u8 = 0x01;
/// The kind byte of an envelope (an MQTT PUBLISH payload).
pub const KIND_ENVELOPE: u8 = 0x02;

/// `magic ‖ version ‖ kind`.
pub(crate) fn header(kind: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(kind);
    out
}

/// Reads fields front to back; every read is bounds-checked and fails with [`crate::Error::Malformed`].
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Checks the header of an object of `kind` and positions the reader after it.
    pub(crate) fn open(bytes: &'a [u8], kind: u8, what: &'static str) -> Result<Reader<'a>> {
        let mut r = Reader { bytes, pos: 0, what };
        if r.take(4)? != MAGIC {
            return Err(malformed(what, "bad magic"));
        }
        if r.u8()? != VERSION {
            return Err(malformed(what, "unsupported version"));
        }
        if r.u8()? != kind {
            return Err(malformed(what, "wrong kind"));
        }
        Ok(r)
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(malformed(self.what, "truncated"));
        };
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Bytes read so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Fails unless every byte was read.
    pub(crate) fn finish(self) -> Result<()> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(malformed(self.what, "trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn header_checks_and_bounds() {
        let mut bytes = header(KIND_CREDENTIAL);
        bytes.extend_from_slice(&[0, 5, 1, 2, 3, 4, 5, 9]);
        let mut r = Reader::open(&bytes, KIND_CREDENTIAL, "x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.u16(), Ok(5));
        let mut r32 = Reader::open(&bytes, KIND_CREDENTIAL, "x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r32.u32(), Ok(0x0005_0102));
        assert_eq!(r.take(5), Ok(&[1, 2, 3, 4, 5][..]));
        assert_eq!(r.position(), 13);
        assert_eq!(r.take(2), Err(Error::Malformed { what: "x", reason: "truncated" }));
        assert_eq!(r.take(usize::MAX), Err(Error::Malformed { what: "x", reason: "truncated" }));
        assert_eq!(r.finish(), Err(Error::Malformed { what: "x", reason: "trailing bytes" }));
        let reason = |b: &[u8]| match Reader::open(b, KIND_CREDENTIAL, "x") {
            Err(Error::Malformed { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(reason(b"SMQA\x01\x01"), "bad magic");
        assert_eq!(reason(b"SMQW\x02\x01"), "unsupported version");
        assert_eq!(reason(b"SMQW\x01\x02"), "wrong kind");
        assert_eq!(reason(b"SMQW\x01"), "truncated");
    }
}
