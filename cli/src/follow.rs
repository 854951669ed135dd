//! `smqtt follow`: keeps a broker's view of the authority current from beside it, for brokers that do not
//! reach the authority themselves (the Mosquitto plugin): the signed epoch statement in the gate's
//! `epoch_file`, and the broker's sealing identity renewed for each new epoch.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use smqtt_client::{DeviceStore, Followed};

use crate::Failure;

/// Runs one step, or steps every `every` until SIGINT/SIGTERM (then exit 0). In the loop a failed step (the
/// authority unreachable, a refused renewal) is reported on stderr and retried at the next one.
pub(crate) async fn run(
    store: PathBuf,
    epoch_file: Option<PathBuf>,
    every: Duration,
    once: bool,
) -> Result<(), Failure> {
    let mut last: Option<u64> = None;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Failure(format!("cannot handle SIGTERM: {e}"), 2))?;
    loop {
        let (step_store, step_file) = (store.clone(), epoch_file.clone());
        let step = tokio::task::spawn_blocking(move || DeviceStore::at(&step_store).follow_once(step_file.as_deref()))
            .await
            .map_err(|e| Failure(e.to_string(), 2))?;
        match step {
            Ok(followed) => {
                report(&followed, last, &store, epoch_file.as_ref());
                last = Some(followed.epoch);
            }
            Err(error) if once => return Err(error.into()),
            Err(error) => {
                let _ = writeln!(std::io::stderr(), "smqtt: follow: {error}");
            }
        }
        if once {
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
        }
    }
}

/// One line on stderr per change (and for the first step), so that a log shows each epoch as it was taken.
fn report(followed: &Followed, last: Option<u64>, store: &std::path::Path, epoch_file: Option<&PathBuf>) {
    let mut stderr = std::io::stderr();
    if last != Some(followed.epoch) {
        let _ = writeln!(stderr, "smqtt: follow: the authority is at epoch {}", followed.epoch);
    }
    if let (true, Some(path)) = (followed.statement_written, epoch_file) {
        let _ =
            writeln!(stderr, "smqtt: follow: wrote the statement of epoch {} to {}", followed.epoch, path.display());
    }
    if followed.renewed {
        let _ = writeln!(stderr, "smqtt: follow: renewed {} for epoch {}", store.display(), followed.epoch);
    }
}
