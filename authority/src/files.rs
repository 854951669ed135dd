//! File creation with the right permissions, never overwriting.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use crate::error::{Error, Result};

/// Creates `dir` (and parents) with mode 0700 if it does not exist.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| Error::io(dir, e))
}

/// Writes `bytes` to a new file with `mode`; fails if the file exists.
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::AlreadyExists(path.display().to_string())
        } else {
            Error::io(path, e)
        }
    })?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| Error::io(path, e))
}

/// Sets `path`'s mode.
pub(crate) fn restrict(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| Error::io(path, e))
}

/// Replaces `path` atomically with `bytes` (mode `mode`): a temporary file in the same folder, written and
/// fsynced, renamed over `path`, and the folder fsynced. Readers see the old content or the new, never a part.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::io(path, std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name")))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{}.{}.tmp", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let temp = folder.join(temp_name);
    let written = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&temp)?;
        // The mode of a new file is masked by the umask: set it exactly.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(folder)?.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Writes epoch statement `text` (one line) to `path` atomically, mode 0644 — how `serve` keeps
/// `[epochs] statement_file` and how `smqtt-authority epoch statement -o` writes.
///
/// # Errors
/// [`Error::Io`].
pub fn write_statement(path: &Path, text: &str) -> Result<()> {
    write_atomic(path, format!("{}\n", text.trim()).as_bytes(), 0o644)
}

/// The authority's verifying key from `authority.pub` in `data_dir`.
///
/// # Errors
/// [`Error::Io`], [`Error::Config`] for a file that is not one base64 Ed25519 key.
pub fn read_verifying_key(data_dir: &Path) -> Result<smqtt_wire::VerifyingKey> {
    use base64::Engine as _;
    let key_path = data_dir.join(crate::VERIFYING_KEY_FILE);
    let text = std::fs::read_to_string(&key_path).map_err(|e| Error::io(&key_path, e))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| Error::config_from(format!("{} is not base64", key_path.display()), e))?;
    let bytes: [u8; 32] =
        bytes.try_into().map_err(|_| Error::config(format!("{} is not a 32-byte key", key_path.display())))?;
    smqtt_wire::VerifyingKey::from_bytes(&bytes)
        .map_err(|e| Error::config_from(format!("{}: {e}", key_path.display()), e))
}
