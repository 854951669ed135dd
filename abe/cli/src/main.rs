//! `smqtt-abe`: set up FAME CP-ABE parameters, issue keys, encrypt and decrypt files from the command line.
//!
//! A thin layer over the `smqtt-abe` library, modelled on OpenABE's `oabe_*` tools and age: the syntax is in
//! [`args`], the behaviour in [`cmd`] and [`demo`], file handling in [`io`], and exit codes in [`error`].

mod args;
mod cmd;
mod demo;
mod error;
mod io;
mod keys;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Usage errors: clap prints its usage text and exits with 2, like every other bad input.
    let cli = args::Cli::parse();
    match cmd::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Not eprintln!: it panics if stderr is gone, and nothing here may panic.
            let _ = writeln!(std::io::stderr(), "{}", error.render());
            ExitCode::from(error.exit_code())
        }
    }
}
