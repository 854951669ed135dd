//! Device identities.

use core::fmt::{self, Display, Formatter};
use core::str::FromStr;

use crate::error::{Error, Result};
use crate::limits::MAX_DEVICE_ID_LEN;

/// A device's name: 1..=64 bytes of `[A-Za-z0-9._-]`.
///
/// The alphabet makes an id safe to use unquoted as an MQTT username, a file name, a URL path segment or SQL
/// text, and keeps it free of look-alike Unicode. Ids are case-sensitive. The names `.` and `..` are refused,
/// so an id never names a directory when used as a path segment.
///
/// ```
/// use smqtt_wire::DeviceId;
/// assert_eq!(DeviceId::new("sensor-07.berlin")?.as_str(), "sensor-07.berlin");
/// assert!(DeviceId::new("sensor 07").is_err());
/// # Ok::<(), smqtt_wire::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct DeviceId(String);

impl DeviceId {
    /// Validates `s` as a device id.
    ///
    /// # Errors
    /// [`Error::InvalidDeviceId`] for empty text, more than [`MAX_DEVICE_ID_LEN`] bytes, a byte outside
    /// `[A-Za-z0-9._-]`, or the names `.` and `..`.
    pub fn new(s: &str) -> Result<DeviceId> {
        check(s.as_bytes())?;
        Ok(DeviceId(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Validates the bytes of a device id.
fn check(bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        return Err(Error::InvalidDeviceId("empty"));
    }
    if bytes.len() > MAX_DEVICE_ID_LEN {
        return Err(Error::InvalidDeviceId("longer than 64 bytes"));
    }
    if !bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err(Error::InvalidDeviceId("only A-Z, a-z, 0-9, '.', '_' and '-' are allowed"));
    }
    if bytes == b"." || bytes == b".." {
        return Err(Error::InvalidDeviceId("'.' and '..' are reserved"));
    }
    Ok(())
}

impl Display for DeviceId {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DeviceId {
    type Err = Error;

    fn from_str(s: &str) -> Result<DeviceId> {
        DeviceId::new(s)
    }
}

impl AsRef<str> for DeviceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_whole_alphabet_and_both_length_bounds() {
        for ok in ["a", "A-Z_a.z-0.9", "...", "-", "_", &"x".repeat(64)] {
            assert_eq!(DeviceId::new(ok).map(|d| d.to_string()), Ok(ok.to_owned()), "{ok:?}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        let long = "x".repeat(65);
        for bad in ["", ".", "..", "a b", "a/b", "a\0", "ä", "a:b", "'", "a;b", "%2e", &long] {
            assert!(matches!(DeviceId::new(bad), Err(Error::InvalidDeviceId(_))), "{bad:?}");
        }
    }

    #[test]
    fn every_ascii_byte_is_classified() {
        for b in 0u8..=127 {
            let s = [b'x', b];
            let text = core::str::from_utf8(&s).unwrap_or_else(|e| panic!("{e}"));
            let allowed = b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-';
            assert_eq!(DeviceId::new(text).is_ok(), allowed, "byte {b:#04x}");
        }
    }
}
