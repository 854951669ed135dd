//! How `smqtt sub` prints a message: byte-exact in every mode.
//!
//! - plain: the payload's bytes as they are, then `\n`;
//! - `-v`: `topic [publisher] payload` on one line, each field escaped (`\\`, `\n`, `\r`, `\t`, `\xNN` for other
//!   control characters and for bytes that are not UTF-8), so no payload can end the line or forge another;
//! - `--json`: one object per line, `payload_base64` always (the exact bytes), `payload` as text when the payload is
//!   valid UTF-8 (else `null`).

use base64::Engine as _;
use smqtt_client::{Message, MessageError};

/// `bytes` with `\`, control characters and non-UTF-8 bytes escaped; reversible.
pub(crate) fn escaped(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// A JSON string literal of `text`.
pub(crate) fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `-v` line of `message` (without the newline).
pub(crate) fn verbose_line(message: &Message) -> String {
    format!(
        "{} [{}] {}",
        escaped(message.topic().as_bytes()),
        escaped(message.publisher().as_bytes()),
        escaped(message.payload())
    )
}

/// The `--json` line of `message` (without the newline).
pub(crate) fn json_line(message: &Message) -> String {
    let text = std::str::from_utf8(message.payload()).map_or_else(|_| "null".to_owned(), json_string);
    format!(
        "{{\"topic\":{},\"publisher\":{},\"payload\":{},\"payload_base64\":\"{}\",\"policy\":{},\"qos\":{},\"retain\":{}}}",
        json_string(message.topic()),
        json_string(message.publisher()),
        text,
        base64::engine::general_purpose::STANDARD.encode(message.payload()),
        json_string(message.policy()),
        message.qos(),
        message.retain()
    )
}

/// The `--json` line of a refused delivery (without the newline).
pub(crate) fn json_refusal(error: &MessageError) -> String {
    format!("{{\"error\":{},\"message\":{}}}", json_string(error.kind()), json_string(&error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain inverse of [`escaped`], as the oracle.
    fn unescaped(text: &str) -> Vec<u8> {
        let (mut out, bytes, mut i) = (Vec::new(), text.as_bytes(), 0);
        while i < bytes.len() {
            if bytes[i] == b'\\' {
                match bytes[i + 1] {
                    b'\\' => out.push(b'\\'),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'x' => {
                        let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).expect("hex");
                        out.push(u8::from_str_radix(hex, 16).expect("hex"));
                        i += 2;
                    }
                    other => panic!("unknown escape {other}"),
                }
                i += 2;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn escaping_is_one_line_and_reversible(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let line = escaped(&bytes);
            proptest::prop_assert!(!line.contains('\n') && !line.contains('\r'));
            proptest::prop_assert!(!line.chars().any(char::is_control));
            proptest::prop_assert_eq!(unescaped(&line), bytes);
        }
    }

    #[test]
    fn a_payload_cannot_forge_another_line() {
        let forged = escaped(b"21.0 C\nplant/x [sensor-1] 99.9 C\x1b[2K\xff");
        assert_eq!(forged, "21.0 C\\nplant/x [sensor-1] 99.9 C\\x1b[2K\\xff");
    }
}
