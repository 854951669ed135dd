//! Bounded reads and atomic writes: the only places the CLI touches files and the standard streams.
//!
//! Reads never take more than `limit + 1` bytes, so an endless stdin cannot exhaust memory. Files are written
//! to a temporary file in the destination's directory, synced, then renamed (or hard-linked, when the
//! destination must not exist yet), so a failure never leaves a half-written file behind.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use crate::error::CliError;

/// Mode of files holding secrets: the master key, user keys and decrypted plaintext.
pub(crate) const SECRET_MODE: u32 = 0o600;
/// Mode of public files (before the umask): the public key and ciphertexts.
pub(crate) const PUBLIC_MODE: u32 = 0o644;

/// Where a command reads its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    /// Standard input (no `-i`, or `-i -`).
    Stdin,
    /// A file.
    File(PathBuf),
}

impl Input {
    /// Interprets an `-i` argument: absent or `-` means standard input.
    pub(crate) fn from_arg(arg: Option<&Path>) -> Input {
        match arg {
            Some(path) if path != Path::new("-") => Input::File(path.to_path_buf()),
            _ => Input::Stdin,
        }
    }

    /// Reads the whole input into zeroizing memory, refusing more than `limit` bytes (`what` names the
    /// content in that message). At most `limit + 1` bytes are ever read.
    pub(crate) fn read_bounded(&self, limit: usize, what: &str) -> Result<Zeroizing<Vec<u8>>, CliError> {
        let bound = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        let mut buffer = Zeroizing::new(Vec::new());
        let result = match self {
            Input::Stdin => io::stdin().lock().take(bound).read_to_end(&mut buffer),
            Input::File(path) => File::open(path).and_then(|file| {
                // Size the buffer up front so that secrets are not left behind in reallocated memory.
                let hint = file.metadata().map(|m| m.len()).unwrap_or(0).min(bound);
                buffer.reserve_exact(usize::try_from(hint).unwrap_or(0));
                file.take(bound).read_to_end(&mut buffer)
            }),
        };
        result.map_err(|e| CliError::io(format!("cannot read {self}"), e))?;
        if buffer.len() > limit {
            return Err(CliError::input(format!("{self}: {what} is larger than the limit of {limit} bytes")));
        }
        Ok(buffer)
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Stdin => f.write_str("<stdin>"),
            Input::File(path) => path.display().fmt(f),
        }
    }
}

/// Where a command writes its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Output {
    /// Standard output (no `-o`, or `-o -`).
    Stdout,
    /// A file, replaced atomically.
    File(PathBuf),
}

impl Output {
    /// Interprets an `-o` argument: absent or `-` means standard output.
    pub(crate) fn from_arg(arg: Option<&Path>) -> Output {
        match arg {
            Some(path) if path != Path::new("-") => Output::File(path.to_path_buf()),
            _ => Output::Stdout,
        }
    }

    /// Writes `bytes` (a `what`): to a file atomically, created with `mode` (minus the umask), or to standard
    /// output. Binary output (keys, ciphertexts) is refused when standard output is a terminal.
    pub(crate) fn write(&self, bytes: &[u8], mode: u32, what: &str, binary: bool) -> Result<(), CliError> {
        match self {
            Output::Stdout => {
                let mut stdout = io::stdout().lock();
                if binary && stdout.is_terminal() {
                    return Err(CliError::input(format!(
                        "refusing to write a binary {what} to a terminal; use -o FILE or redirect standard output"
                    )));
                }
                stdout
                    .write_all(bytes)
                    .and_then(|()| stdout.flush())
                    .map_err(|e| CliError::io("cannot write <stdout>", e))
            }
            Output::File(path) => PendingFile::write(path, bytes, mode)
                .and_then(PendingFile::replace)
                .map_err(|e| CliError::io(format!("cannot write {}", path.display()), e)),
        }
    }
}

/// Prints `text` and a newline on standard output, reporting (not panicking on) a closed pipe.
pub(crate) fn print_line(text: &str) -> Result<(), CliError> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{text}").and_then(|()| stdout.flush()).map_err(|e| CliError::io("cannot write <stdout>", e))
}

/// A fully written and synced temporary file next to its destination. Dropping it without committing
/// removes it.
#[derive(Debug)]
pub(crate) struct PendingFile {
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl PendingFile {
    /// Writes `bytes` to a new temporary file (mode `mode`) in `target`'s directory and syncs it.
    pub(crate) fn write(target: &Path, bytes: &[u8], mode: u32) -> io::Result<PendingFile> {
        let (mut file, temp) = create_temp_beside(target, mode)?;
        let pending = PendingFile { temp, target: target.to_path_buf(), committed: false };
        file.write_all(bytes)?;
        file.sync_all()?;
        Ok(pending)
    }

    /// Moves the file into place, atomically replacing any existing file.
    pub(crate) fn replace(mut self) -> io::Result<()> {
        fs::rename(&self.temp, &self.target)?;
        self.committed = true;
        sync_parent(&self.target);
        Ok(())
    }

    /// Moves the file into place only if nothing exists there yet (`ErrorKind::AlreadyExists` otherwise).
    /// A hard link is the atomic no-clobber rename available everywhere in std.
    pub(crate) fn create_new(mut self) -> io::Result<()> {
        fs::hard_link(&self.temp, &self.target)?;
        self.committed = true;
        // The destination is complete; a leftover temporary name would only be clutter.
        let _ = fs::remove_file(&self.temp);
        sync_parent(&self.target);
        Ok(())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Creates `.<name>.<pid>-<n>-<nanos>.tmp` in `target`'s directory with `create_new` and `mode`.
fn create_temp_beside(target: &Path, mode: u32) -> io::Result<(File, PathBuf)> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name = target.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let dir = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let mut last_error = io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary file name");
    for _ in 0..64 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut temp_name = OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".{}-{n}-{nanos}.tmp", std::process::id()));
        let temp = dir.join(temp_name);
        match OpenOptions::new().write(true).create_new(true).mode(mode).open(&temp) {
            Ok(file) => return Ok((file, temp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = e,
            Err(e) => return Err(e),
        }
    }
    Err(last_error)
}

/// Best effort: makes a rename durable by syncing the directory that holds `path`.
fn sync_parent(path: &Path) {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn pending_file_replaces_atomically_and_cleans_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("out.bin");
        fs::write(&target, b"old").expect("write");
        PendingFile::write(&target, b"new", SECRET_MODE).and_then(PendingFile::replace).expect("replace");
        assert_eq!(fs::read(&target).expect("read"), b"new");
        let mode = fs::metadata(&target).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        drop(PendingFile::write(&target, b"abandoned", SECRET_MODE).expect("write"));
        assert_eq!(fs::read_dir(dir.path()).expect("read_dir").count(), 1, "temporary file left behind");
    }

    #[test]
    fn create_new_refuses_to_clobber() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("master.key");
        PendingFile::write(&target, b"one", SECRET_MODE).and_then(PendingFile::create_new).expect("first");
        let second = PendingFile::write(&target, b"two", SECRET_MODE).and_then(PendingFile::create_new);
        assert_eq!(second.map_err(|e| e.kind()), Err(io::ErrorKind::AlreadyExists));
        assert_eq!(fs::read(&target).expect("read"), b"one");
        assert_eq!(fs::read_dir(dir.path()).expect("read_dir").count(), 1);
    }

    #[test]
    fn reads_are_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big");
        fs::write(&path, [7u8; 11]).expect("write");
        let input = Input::File(path);
        assert_eq!(input.read_bounded(11, "thing").expect("fits").len(), 11);
        let error = input.read_bounded(10, "thing").expect_err("too big");
        assert!(error.render().contains("larger than the limit of 10 bytes"));
    }
}
