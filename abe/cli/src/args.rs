//! Command-line syntax (clap derive). Behaviour lives in [`crate::cmd`] and [`crate::demo`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::CliError;

/// File name of the public key inside a setup directory.
pub(crate) const PUBLIC_KEY_FILE: &str = "public.key";
/// File name of the master key inside a setup directory.
pub(crate) const MASTER_KEY_FILE: &str = "master.key";

/// FAME CP-ABE (attribute-based encryption) on BLS12-381 from the command line.
#[derive(Debug, Parser)]
#[command(
    name = "smqtt-abe",
    version,
    after_help = "Exit status: 0 success, 1 the key does not satisfy the ciphertext's policy, \
                  2 bad input of any kind (unreadable or malformed file, bad policy or attributes, \
                  tampered ciphertext, usage error).\n\nNew here? Run `smqtt-abe demo`."
)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create public parameters (DIR/public.key) and the master key (DIR/master.key).
    #[command(long_about = "Create public parameters (DIR/public.key) and the master key (DIR/master.key).\n\n\
        DIR is created (mode 0700) if needed. master.key is written with mode 0600 and is NOT encrypted: \
        protect it like any private key (the authority service will seal it at rest; this tool does not). \
        An existing setup is never overwritten.")]
    Setup(SetupArgs),
    /// Issue a user key for a list of attributes (needs DIR/public.key and DIR/master.key).
    Keygen(KeygenArgs),
    /// Encrypt under a policy (stdin to stdout unless -i/-o are given).
    Encrypt(EncryptArgs),
    /// Decrypt with a user key (stdin to stdout unless -i/-o are given).
    Decrypt(DecryptArgs),
    /// Check policies and inspect sealed files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// A self-contained round trip in a temporary directory: setup, two users, two messages.
    Demo,
}

/// `smqtt-abe setup`.
#[derive(Debug, Args)]
pub(crate) struct SetupArgs {
    /// Directory to create the setup in.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: PathBuf,
}

/// `smqtt-abe keygen`.
#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Setup directory (reads DIR/public.key and DIR/master.key).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: PathBuf,
    /// The key's attributes, e.g. "role:operator, site:berlin, level = 5".
    #[arg(long, value_name = "LIST")]
    pub(crate) attrs: String,
    /// Where to write the user key (mode 0600); `-` or absent: standard output.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
}

/// `smqtt-abe encrypt`.
#[derive(Debug, Args)]
pub(crate) struct EncryptArgs {
    /// Where the public key comes from.
    #[command(flatten)]
    pub(crate) public_key: PublicKeySource,
    /// The policy a key must satisfy, e.g. "(role:operator and site:berlin) or role:admin".
    #[arg(long, value_name = "POLICY")]
    pub(crate) policy: String,
    /// File to encrypt; `-` or absent: standard input.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) input: Option<PathBuf>,
    /// Where to write the sealed message; `-` or absent: standard output.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
}

/// `smqtt-abe decrypt`.
#[derive(Debug, Args)]
pub(crate) struct DecryptArgs {
    /// The user key (from `keygen`).
    #[arg(long, value_name = "FILE")]
    pub(crate) key: PathBuf,
    /// Where the public key comes from.
    #[command(flatten)]
    pub(crate) public_key: PublicKeySource,
    /// Sealed message; `-` or absent: standard input.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) input: Option<PathBuf>,
    /// Where to write the plaintext (mode 0600); `-` or absent: standard output.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
}

/// Exactly one of `--dir DIR` (meaning DIR/public.key) and `--pub FILE`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct PublicKeySource {
    /// Setup directory (reads DIR/public.key).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// Public key file.
    #[arg(long = "pub", value_name = "FILE")]
    pub(crate) public_key_file: Option<PathBuf>,
}

impl PublicKeySource {
    /// The public key file this source names (clap's group already requires exactly one of the two).
    pub(crate) fn path(&self) -> Result<PathBuf, CliError> {
        match (&self.public_key_file, &self.dir) {
            (Some(file), _) => Ok(file.clone()),
            (None, Some(dir)) => Ok(dir.join(PUBLIC_KEY_FILE)),
            (None, None) => Err(CliError::input("one of --dir DIR or --pub FILE is required")),
        }
    }
}

/// `smqtt-abe policy ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Parse a policy and print its canonical form (exit 2 with the column of a syntax error).
    Check {
        /// The policy text, e.g. "2 of (dept:ops, dept:sec, clearance:high)".
        policy: String,
        /// Print the JSON form instead of the canonical text.
        #[arg(long)]
        json: bool,
    },
    /// Print the policy a sealed message was encrypted under.
    Show {
        /// Sealed message; `-` or absent: standard input.
        #[arg(short, long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// Print the JSON form instead of the canonical text.
        #[arg(long)]
        json: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn dir_and_pub_are_exclusive_and_one_is_required() {
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied());
        assert!(parse(&["smqtt-abe", "encrypt", "--policy", "a"]).is_err());
        assert!(parse(&["smqtt-abe", "encrypt", "--policy", "a", "--dir", "d", "--pub", "p"]).is_err());
        assert!(parse(&["smqtt-abe", "encrypt", "--policy", "a", "--pub", "p"]).is_ok());
        assert!(parse(&["smqtt-abe", "decrypt", "--key", "k", "--dir", "d"]).is_ok());
    }
}
