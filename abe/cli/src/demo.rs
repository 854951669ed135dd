//! `smqtt-abe demo`: a self-contained round trip for newcomers, in a throwaway directory.
//!
//! Setup, keys for two users, two messages under two policies, every user against every message, and one
//! tampered ciphertext. The expected outcomes are checked, so the demo doubles as a smoke test.

use std::fs::{self, DirBuilder};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand_core::OsRng;
use smqtt_abe::{seal, AttributeSet, Error, Policy, UserKey};

use crate::args::{MASTER_KEY_FILE, PUBLIC_KEY_FILE};
use crate::error::CliError;
use crate::io::{PendingFile, PUBLIC_MODE, SECRET_MODE};
use crate::keys::{load_master_key, load_public_key, load_user_key};

/// A demo user: a name and the attribute list the key is issued for.
struct DemoUser {
    name: &'static str,
    attributes: &'static str,
}

/// A demo message: a file name, the policy it is sealed under, the text, and who may read it.
struct DemoMessage {
    file: &'static str,
    policy: &'static str,
    text: &'static str,
    readers: &'static [&'static str],
}

const USERS: [DemoUser; 2] = [
    DemoUser { name: "alice", attributes: "role:operator, site:berlin, level = 5" },
    DemoUser { name: "bob", attributes: "role:intern, site:paris, level = 1" },
];

const MESSAGES: [DemoMessage; 2] = [
    DemoMessage {
        file: "valve.sealed",
        policy: "(role:operator and site:berlin) or role:admin",
        text: "valve 7 closed at 14:02",
        readers: &["alice"],
    },
    DemoMessage {
        file: "line.sealed",
        policy: "level >= 3 and site:berlin",
        text: "berlin line 2: 23.5 C",
        readers: &["alice"],
    },
];

/// Writes one formatted line to the demo's output, turning a write failure into a [`CliError`].
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {
        writeln!($out, $($arg)*).map_err(|e| CliError::io("cannot write <stdout>", e))?
    };
}

/// Runs the demo in a fresh temporary directory and removes it afterwards, whatever happened.
pub(crate) fn run() -> Result<(), CliError> {
    let scratch = ScratchDir::create()?;
    let mut out = io::stdout().lock();
    run_in(&scratch.path, &mut out)?;
    scratch.remove()?;
    say!(out, "Removed the directory. Same steps by hand: see `smqtt-abe --help`.");
    Ok(())
}

/// The demo proper: every file goes through the same atomic writes and validating reads as the commands.
fn run_in(dir: &Path, out: &mut impl Write) -> Result<(), CliError> {
    say!(out, "smqtt-abe demo: FAME CP-ABE on BLS12-381, working in {}\n", dir.display());

    let started = Instant::now();
    let (public_key, master_key) = smqtt_abe::setup(&mut OsRng).map_err(|e| CliError::abe("setup", e))?;
    let elapsed = started.elapsed();
    let public_bytes = save(dir, PUBLIC_KEY_FILE, &public_key.to_bytes(), PUBLIC_MODE)?;
    let master_bytes = save(dir, MASTER_KEY_FILE, &master_key.to_bytes(), SECRET_MODE)?;
    say!(out, "setup    {PUBLIC_KEY_FILE:<13} {:>8}  {}", size(public_bytes), ms(elapsed));
    say!(out, "         {MASTER_KEY_FILE:<13} {:>8}              mode 0600, not encrypted", size(master_bytes));
    let public_key = load_public_key(&dir.join(PUBLIC_KEY_FILE))?;
    let master_key = load_master_key(&dir.join(MASTER_KEY_FILE))?;

    let mut keys: Vec<(&DemoUser, UserKey)> = Vec::new();
    for user in &USERS {
        let attributes = AttributeSet::parse(user.attributes).map_err(|e| CliError::abe("demo attributes", e))?;
        let started = Instant::now();
        let key = master_key.keygen(&public_key, &attributes, &mut OsRng).map_err(|e| CliError::abe("keygen", e))?;
        let elapsed = started.elapsed();
        let file = format!("{}.key", user.name);
        let written = save(dir, &file, &key.to_bytes(), SECRET_MODE)?;
        say!(out, "keygen   {file:<13} {:>8}  {}  {attributes}", size(written), ms(elapsed));
        keys.push((user, load_user_key(&dir.join(&file))?));
    }

    let mut sealed_messages = Vec::new();
    for message in &MESSAGES {
        let policy = Policy::parse(message.policy).map_err(|e| CliError::abe("demo policy", e))?;
        let started = Instant::now();
        let sealed = seal::seal(&public_key, &policy, message.text.as_bytes(), &mut OsRng)
            .map_err(|e| CliError::abe("encrypt", e))?;
        let elapsed = started.elapsed();
        let written = save(dir, message.file, &sealed, PUBLIC_MODE)?;
        say!(out, "encrypt  {:<13} {:>8}  {}  {policy}", message.file, size(written), ms(elapsed));
        sealed_messages.push((message, sealed));
    }

    say!(out, "");
    for (message, sealed) in &sealed_messages {
        for (user, key) in &keys {
            let started = Instant::now();
            let result = seal::open(&public_key, key, sealed);
            let elapsed = started.elapsed();
            let expected_reader = message.readers.contains(&user.name);
            match result {
                Ok(plaintext) if expected_reader && plaintext.as_slice() == message.text.as_bytes() => {
                    let text = String::from_utf8_lossy(&plaintext);
                    say!(out, "decrypt  {:<13} {:<8} {}  ok: {text:?}", message.file, user.name, ms(elapsed));
                }
                Err(Error::PolicyNotSatisfied) if !expected_reader => {
                    say!(
                        out,
                        "decrypt  {:<13} {:<8} {}  refused (PolicyNotSatisfied): key has {}",
                        message.file,
                        user.name,
                        ms(elapsed),
                        key.attributes()
                    );
                }
                other => {
                    let outcome = other.map(|_| "it decrypted".to_string()).unwrap_or_else(|e| e.to_string());
                    return Err(CliError::input(format!(
                        "demo: unexpected outcome for {} opening {}: {outcome}",
                        user.name, message.file
                    )));
                }
            }
        }
    }

    show_tampering(out, &public_key, &keys, &sealed_messages)?;
    say!(
        out,
        "\nPolicyNotSatisfied is decided from public data before any pairing (CLI exit code 1);\n\
         DecryptionFailed means a corrupted or tampered message (exit code 2).\n\
         The first keygen and encrypt include one-off precomputation."
    );
    Ok(())
}

/// Flips one byte of the first message's encrypted text and shows that its reader now gets DecryptionFailed.
fn show_tampering(
    out: &mut impl Write,
    public_key: &smqtt_abe::PublicKey,
    keys: &[(&DemoUser, UserKey)],
    sealed_messages: &[(&DemoMessage, Vec<u8>)],
) -> Result<(), CliError> {
    let (Some((message, sealed)), Some((user, key))) = (sealed_messages.first(), keys.first()) else {
        return Ok(());
    };
    let mut tampered = sealed.clone();
    // The last byte of the encrypted text, just before the 16-byte tag.
    let position = tampered.len().saturating_sub(17);
    if let Some(byte) = tampered.get_mut(position) {
        *byte ^= 0x01;
    }
    let started = Instant::now();
    let result = seal::open(public_key, key, &tampered);
    let elapsed = started.elapsed();
    match result {
        Err(Error::DecryptionFailed) => {
            say!(
                out,
                "tamper   {:<13} {:<8} {}  refused (DecryptionFailed): byte {position} flipped",
                message.file,
                user.name,
                ms(elapsed)
            );
            Ok(())
        }
        other => {
            let outcome = other.map(|_| "it decrypted".to_string()).unwrap_or_else(|e| e.to_string());
            Err(CliError::input(format!("demo: unexpected outcome for a tampered message: {outcome}")))
        }
    }
}

/// Writes `bytes` to `dir/name` (atomically, with `mode`) and returns the size written.
fn save(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<usize, CliError> {
    let path = dir.join(name);
    PendingFile::write(&path, bytes, mode)
        .and_then(PendingFile::replace)
        .map_err(|e| CliError::io(format!("cannot write {}", path.display()), e))?;
    Ok(bytes.len())
}

/// A byte count for people: `1350 B`, `9.6 KiB`.
fn size(bytes: usize) -> String {
    if bytes < 10 * 1024 {
        format!("{bytes} B")
    } else {
        // Display only: the precision lost converting to f64 is irrelevant at one decimal.
        #[allow(clippy::cast_precision_loss)]
        let kib = bytes as f64 / 1024.0;
        format!("{kib:.1} KiB")
    }
}

/// A duration in milliseconds, right-aligned.
fn ms(duration: Duration) -> String {
    format!("{:>7.1} ms", duration.as_secs_f64() * 1000.0)
}

/// A private temporary directory (mode 0700) that is removed when dropped.
struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `<temp_dir>/smqtt-abe-demo-<pid>-<nanos>`; `create` (not `create_all`) fails if it exists.
    fn create() -> Result<ScratchDir, CliError> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let path = std::env::temp_dir().join(format!("smqtt-abe-demo-{}-{nanos}", std::process::id()));
        DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| CliError::io(format!("cannot create {}", path.display()), e))?;
        Ok(ScratchDir { path })
    }

    /// Removes the directory now, reporting failure (the drop that follows finds nothing left to remove).
    fn remove(self) -> Result<(), CliError> {
        fs::remove_dir_all(&self.path).map_err(|e| CliError::io(format!("cannot remove {}", self.path.display()), e))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}
