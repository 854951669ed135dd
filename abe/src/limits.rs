//! Bounds on every input that can come from a file or the network. Each overflow is an
//! [`Error::LimitExceeded`](crate::Error::LimitExceeded) naming the [`Limit`](crate::Limit).

/// Bytes of policy text (also bounds the JSON form at four times this).
pub const MAX_POLICY_LEN: usize = 16 * 1024;
/// Nesting depth of gates and of parentheses.
pub const MAX_POLICY_DEPTH: usize = 16;
/// Rows of the LSSS matrix (leaves after numeric expansion); also bounds the leaves of a parsed policy.
pub const MAX_POLICY_ROWS: usize = 256;
/// Bytes of one attribute name.
pub const MAX_ATTRIBUTE_LEN: usize = 256;
/// Attributes in one key (a numeric attribute counts once here, though it costs [`NUMERIC_BITS`] key parts).
pub const MAX_KEY_ATTRIBUTES: usize = 256;
/// Width of numeric attributes: values are unsigned 32-bit integers, encoded bit by bit.
pub const NUMERIC_BITS: u32 = 32;
/// Bytes of an encoded key, parameter set or capsule (a key with [`MAX_KEY_ATTRIBUTES`] numeric attributes
/// is ≈ 1.2 MB).
pub const MAX_OBJECT_LEN: usize = 2 * 1024 * 1024;
/// Bytes of plaintext in one sealed message.
pub const MAX_SEALED_PLAINTEXT: usize = 64 * 1024 * 1024;
