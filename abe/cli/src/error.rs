//! The CLI's one error type: a one-line message plus the exit code it maps to.
//!
//! Exit codes: 0 success, [`EXIT_NOT_SATISFIED`] when a key does not satisfy a ciphertext's policy (and only
//! then), [`EXIT_BAD_INPUT`] for everything else (unreadable or malformed files, bad policies or attributes,
//! tampered ciphertexts, usage errors — clap uses 2 for those too).

use std::fmt::Display;
use std::io;

use smqtt_abe::Error;

/// Exit code for [`Error::PolicyNotSatisfied`].
pub(crate) const EXIT_NOT_SATISFIED: u8 = 1;
/// Exit code for bad input of any kind.
pub(crate) const EXIT_BAD_INPUT: u8 = 2;

/// A failed command: what to print on stderr and which exit code to return.
#[derive(Debug)]
pub(crate) struct CliError {
    /// The message, without the `smqtt-abe: ` prefix. Rendered on a single line.
    message: String,
    /// Whether this is the "key does not satisfy the policy" outcome (exit code 1).
    not_satisfied: bool,
    /// Optional lines printed after the message (the policy and a caret under a syntax error).
    detail: Option<String>,
}

impl CliError {
    /// Bad input described by `message` (exit code 2).
    pub(crate) fn input(message: impl Into<String>) -> CliError {
        CliError { message: message.into(), not_satisfied: false, detail: None }
    }

    /// A key that does not satisfy a policy (exit code 1).
    pub(crate) fn not_satisfied(message: impl Into<String>) -> CliError {
        CliError { message: message.into(), not_satisfied: true, detail: None }
    }

    /// A library error, prefixed with `context` (usually the file or option it came from).
    pub(crate) fn abe(context: impl Display, error: Error) -> CliError {
        let message = format!("{context}: {error}");
        match error {
            Error::PolicyNotSatisfied => CliError::not_satisfied(message),
            _ => CliError::input(message),
        }
    }

    /// An I/O error while doing `action` (e.g. "cannot read user.key").
    pub(crate) fn io(action: impl Display, error: io::Error) -> CliError {
        CliError::input(format!("{action}: {error}"))
    }

    /// Attaches lines to print after the message.
    pub(crate) fn with_detail(mut self, detail: String) -> CliError {
        self.detail = Some(detail);
        self
    }

    /// The process exit code for this error.
    pub(crate) fn exit_code(&self) -> u8 {
        if self.not_satisfied {
            EXIT_NOT_SATISFIED
        } else {
            EXIT_BAD_INPUT
        }
    }

    /// The text for stderr: `smqtt-abe: <message>` on one line (control characters escaped, so a path or an
    /// attribute can never split it), then the detail lines if any. No trailing newline.
    pub(crate) fn render(&self) -> String {
        let mut out = String::from("smqtt-abe: ");
        for c in self.message.chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        if let Some(detail) = &self.detail {
            out.push('\n');
            out.push_str(detail);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_spec() {
        assert_eq!(CliError::abe("x", Error::PolicyNotSatisfied).exit_code(), EXIT_NOT_SATISFIED);
        assert_eq!(CliError::abe("x", Error::DecryptionFailed).exit_code(), EXIT_BAD_INPUT);
        assert_eq!(CliError::abe("x", Error::ParameterMismatch).exit_code(), EXIT_BAD_INPUT);
        assert_eq!(CliError::input("x").exit_code(), EXIT_BAD_INPUT);
    }

    #[test]
    fn messages_stay_on_one_line() {
        let rendered = CliError::input("cannot read a\nb\r.key").render();
        assert_eq!(rendered, "smqtt-abe: cannot read a\\nb\\r.key");
    }
}
