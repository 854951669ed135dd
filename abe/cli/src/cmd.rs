//! The subcommands: thin glue between arguments, files and the `smqtt-abe` library.

use std::fs::{self, DirBuilder};
use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use rand_core::OsRng;
use smqtt_abe::limits::{MAX_OBJECT_LEN, MAX_SEALED_PLAINTEXT};
use smqtt_abe::{seal, AttributeSet, Error, Limit, Policy, UserKey};

use crate::args::{
    Command, DecryptArgs, EncryptArgs, KeygenArgs, PolicyCommand, SetupArgs, MASTER_KEY_FILE, PUBLIC_KEY_FILE,
};
use crate::demo;
use crate::error::CliError;
use crate::io::{print_line, Input, Output, PendingFile, PUBLIC_MODE, SECRET_MODE};
use crate::keys::{load_master_key, load_public_key, load_user_key};

/// Largest sealed message accepted: the plaintext bound plus room for the capsule.
pub(crate) const MAX_SEALED_LEN: usize = MAX_SEALED_PLAINTEXT + MAX_OBJECT_LEN;

/// Runs one subcommand.
pub(crate) fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Setup(args) => setup(&args),
        Command::Keygen(args) => keygen(&args),
        Command::Encrypt(args) => encrypt(&args),
        Command::Decrypt(args) => decrypt(&args),
        Command::Policy(PolicyCommand::Check { policy, json }) => policy_check(&policy, json),
        Command::Policy(PolicyCommand::Show { input, json }) => policy_show(&Input::from_arg(input.as_deref()), json),
        Command::Demo => demo::run(),
    }
}

/// `setup`: fresh parameters into DIR, refusing to touch an existing setup.
fn setup(args: &SetupArgs) -> Result<(), CliError> {
    let dir = &args.dir;
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| CliError::io(format!("cannot create {}", dir.display()), e))?;
    let master_path = dir.join(MASTER_KEY_FILE);
    let public_path = dir.join(PUBLIC_KEY_FILE);
    let already_set_up = |path: &Path| {
        CliError::input(format!("{} already exists; refusing to overwrite an existing setup", path.display()))
    };
    for path in [&master_path, &public_path] {
        if fs::symlink_metadata(path).is_ok() {
            return Err(already_set_up(path));
        }
    }

    let (public_key, master_key) = smqtt_abe::setup(&mut OsRng).map_err(|e| CliError::abe("setup", e))?;
    let write_error = |path: &Path, e| CliError::io(format!("cannot write {}", path.display()), e);
    let master = PendingFile::write(&master_path, &master_key.to_bytes(), SECRET_MODE)
        .map_err(|e| write_error(&master_path, e))?;
    let public = PendingFile::write(&public_path, &public_key.to_bytes(), PUBLIC_MODE)
        .map_err(|e| write_error(&public_path, e))?;
    // No-clobber publication: if another setup raced us into DIR, keep its files and fail.
    master.create_new().map_err(|e| match e.kind() {
        ErrorKind::AlreadyExists => already_set_up(&master_path),
        _ => write_error(&master_path, e),
    })?;
    public.create_new().map_err(|e| {
        // Undo our own master.key so that DIR never holds half a setup.
        let _ = fs::remove_file(&master_path);
        match e.kind() {
            ErrorKind::AlreadyExists => already_set_up(&public_path),
            _ => write_error(&public_path, e),
        }
    })
}

/// `keygen`: a user key for `--attrs`, written with mode 0600.
fn keygen(args: &KeygenArgs) -> Result<(), CliError> {
    let attributes = AttributeSet::parse(&args.attrs).map_err(|e| CliError::abe("--attrs", e))?;
    let public_path = args.dir.join(PUBLIC_KEY_FILE);
    let master_path = args.dir.join(MASTER_KEY_FILE);
    let public_key = load_public_key(&public_path)?;
    let master_key = load_master_key(&master_path)?;
    let user_key = master_key.keygen(&public_key, &attributes, &mut OsRng).map_err(|e| match e {
        Error::ParameterMismatch => CliError::input(format!(
            "{} and {} belong to different setups",
            master_path.display(),
            public_path.display()
        )),
        e => CliError::abe("keygen", e),
    })?;
    Output::from_arg(args.output.as_deref()).write(&user_key.to_bytes(), SECRET_MODE, "user key", true)
}

/// `encrypt`: seal the input under `--policy`.
fn encrypt(args: &EncryptArgs) -> Result<(), CliError> {
    // Parse the policy first so that a typo fails before stdin is consumed.
    let policy = Policy::parse(&args.policy).map_err(|e| CliError::abe("--policy", e))?;
    policy.ciphertext_rows().map_err(|e| CliError::abe("--policy", e))?;
    let public_key = load_public_key(&args.public_key.path()?)?;
    let input = Input::from_arg(args.input.as_deref());
    let plaintext = input.read_bounded(MAX_SEALED_PLAINTEXT, "plaintext")?;
    let sealed = seal::seal(&public_key, &policy, &plaintext, &mut OsRng).map_err(|e| match e {
        Error::Rng => CliError::abe("encrypt", e),
        Error::LimitExceeded { what: Limit::EncodedLength, .. } => CliError::abe(&input, e),
        // Everything else comes from compiling the policy (a repeated attribute, an impossible comparison, ...).
        e => CliError::abe("--policy", e),
    })?;
    Output::from_arg(args.output.as_deref()).write(&sealed, PUBLIC_MODE, "sealed message", true)
}

/// `decrypt`: open the input with `--key`. Nothing is written unless the AEAD tag verified.
fn decrypt(args: &DecryptArgs) -> Result<(), CliError> {
    let public_key = load_public_key(&args.public_key.path()?)?;
    let user_key = load_user_key(&args.key)?;
    let input = Input::from_arg(args.input.as_deref());
    let sealed = input.read_bounded(MAX_SEALED_LEN, "sealed message")?;
    let plaintext = seal::open(&public_key, &user_key, &sealed).map_err(|e| match e {
        Error::PolicyNotSatisfied => not_satisfied(&input, &user_key, &sealed),
        Error::DecryptionFailed => CliError::input(format!(
            "{input}: decryption failed (the sealed message is corrupted or was tampered with)"
        )),
        Error::ParameterMismatch => CliError::input(format!(
            "{input}: the user key (parameters {}), public key (parameters {}) and sealed message are not all from \
             the same setup",
            user_key.params_id(),
            public_key.id()
        )),
        e => CliError::abe(&input, e),
    })?;
    Output::from_arg(args.output.as_deref()).write(&plaintext, SECRET_MODE, "plaintext", false)
}

/// The exit-1 message: the policy and the key's attributes, both public.
fn not_satisfied(input: &Input, user_key: &UserKey, sealed: &[u8]) -> CliError {
    let policy = seal::sealed_policy(sealed).map(|p| p.to_string()).unwrap_or_else(|_| "?".into());
    CliError::not_satisfied(format!(
        "{input}: key does not satisfy the policy `{policy}` (key attributes: {})",
        user_key.attributes()
    ))
}

/// `policy check`: canonical form or JSON on stdout; a syntax error shows the policy with a caret.
fn policy_check(text: &str, json: bool) -> Result<(), CliError> {
    match Policy::parse(text).and_then(|p| p.ciphertext_rows().map(|_| p)) {
        Ok(policy) => print_line(&if json { policy.to_json() } else { policy.to_string() }),
        Err(e @ Error::PolicySyntax { column, .. }) => {
            let error = CliError::input(e.to_string());
            Err(match caret_display(text, column) {
                Some(detail) => error.with_detail(detail),
                None => error,
            })
        }
        Err(e) => Err(CliError::input(e.to_string())),
    }
}

/// `policy show`: the policy a sealed message was encrypted under.
fn policy_show(input: &Input, json: bool) -> Result<(), CliError> {
    let sealed = input.read_bounded(MAX_SEALED_LEN, "sealed message")?;
    let policy = seal::sealed_policy(&sealed).map_err(|e| CliError::abe(input, e))?;
    print_line(&if json { policy.to_json() } else { policy.to_string() })
}

/// Two lines pointing at 1-based byte `column` of `text`: the line of the policy that holds it (control
/// characters shown as spaces) and a caret under it. `None` when the line is too long to be useful.
fn caret_display(text: &str, column: usize) -> Option<String> {
    const MAX_SHOWN_CHARS: usize = 160;
    let mut offset = column.saturating_sub(1).min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line: String = text[line_start..line_end].chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if line.chars().count() > MAX_SHOWN_CHARS {
        return None;
    }
    let caret_at = text[line_start..offset].chars().count();
    Some(format!("  {line}\n  {}^", " ".repeat(caret_at)))
}

#[cfg(test)]
mod tests {
    use super::caret_display;

    #[test]
    fn caret_points_at_the_column() {
        assert_eq!(caret_display("(a and b", 9).as_deref(), Some("  (a and b\n          ^"));
        assert_eq!(caret_display("a and", 1).as_deref(), Some("  a and\n  ^"));
    }

    #[test]
    fn caret_counts_characters_and_stays_on_the_offending_line() {
        // Column 9 is the byte after "\"é\" or" ("é" is two bytes).
        assert_eq!(caret_display("\"é\" or )", 9).as_deref(), Some("  \"é\" or )\n         ^"));
        assert_eq!(caret_display("a or\n(b", 8).as_deref(), Some("  (b\n    ^"));
        assert_eq!(caret_display(&"a or ".repeat(100), 3), None);
    }
}
