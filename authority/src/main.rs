//! `smqtt-authority`: create, serve and administer an SMQTT key authority.
//!
//! Exit codes: 0 success; 1 the authority refused (or the audit chain does not verify); 2 bad input, usage or
//! configuration, unreachable authority. Errors are one line on stderr.

mod cli;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let _ = writeln!(std::io::stderr(), "smqtt-authority: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
