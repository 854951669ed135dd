//! `smqtt follow` as an operator runs it beside Mosquitto: one step with `--once` (the epoch file written,
//! never backwards; the store renewed for a new epoch), a loop that ends with exit 0 on SIGTERM, and one-line
//! failures with honest exit codes.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use smqtt_testkit::TestAuthority;
use smqtt_wire::{EpochBody, EpochStatement, SigningKey, VerifyingKey};

const BIN: &str = env!("CARGO_BIN_EXE_smqtt");

fn follow(store: &Path, args: &[&str]) -> Output {
    Command::new(BIN).arg("follow").arg("--store").arg(store).args(args).stdin(Stdio::null()).output().expect("smqtt")
}

fn held_epoch(file: &Path, authority: &VerifyingKey) -> u64 {
    let text = std::fs::read_to_string(file).expect("epoch file");
    EpochStatement::parse(text.trim()).and_then(|s| s.verify(authority)).expect("a signed statement").epoch()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn once_writes_forward_only_and_renews_for_a_new_epoch() {
    let world = TestAuthority::new();
    let broker = world.device("broker", "role:broker", &["legacy/#"]);
    world.device("victim", "role:sensor", &[]);
    let authority = *broker.identity.authority_key();
    let file = world.dir.path().join("epoch.statement");
    let file_arg = file.to_str().expect("utf-8");
    let epoch1 = world.admin.epoch().expect("epoch").epoch;

    // The first step writes the statement; the store is current, so nothing is renewed.
    let out = follow(&broker.dir, &["--epoch-file", file_arg, "--once"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(held_epoch(&file, &authority), epoch1);
    assert!(stderr(&out).contains(&format!("wrote the statement of epoch {epoch1}")), "{}", stderr(&out));
    assert!(!stderr(&out).contains("renewed"), "{}", stderr(&out));
    // Again: nothing to do, the file is left alone.
    let before = std::fs::metadata(&file).and_then(|m| m.modified()).expect("mtime");
    let out = follow(&broker.dir, &["--epoch-file", file_arg, "--once"]);
    assert!(out.status.success() && !stderr(&out).contains("wrote"), "{out:?}");
    assert_eq!(std::fs::metadata(&file).and_then(|m| m.modified()).expect("mtime"), before);

    // A revocation: the next step writes the new statement and renews the broker's store.
    let revoked = world.admin.revoke_device("victim").expect("revoke");
    let epoch2 = revoked.epoch.epoch;
    assert!(epoch2 > epoch1);
    let out = follow(&broker.dir, &["--epoch-file", file_arg, "--once"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(held_epoch(&file, &authority), epoch2);
    assert!(stderr(&out).contains(&format!("for epoch {epoch2}")), "{}", stderr(&out));
    assert_eq!(broker.store().load().expect("renewed store").epoch(), epoch2);

    // A statement of another signer in the file counts for nothing, however new it claims to be: it is
    // replaced by the authority's.
    let impostor = SigningKey::from_bytes(&[7; 32]);
    let forged = EpochBody { epoch: epoch2 + 100, started_at: 1, issued_at: 1, params_id: [0; 32] }.sign(&impostor);
    std::fs::write(&file, format!("{forged}\n")).expect("write");
    let out = follow(&broker.dir, &["--epoch-file", file_arg, "--once"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(held_epoch(&file, &authority), epoch2, "a statement of another signer was kept");
}

#[test]
fn a_revoked_store_fails_in_one_line_after_writing_the_statement() {
    let world = TestAuthority::new();
    let victim = world.device("victim", "role:sensor", &[]);
    let file = world.dir.path().join("epoch.statement");
    let epoch2 = world.admin.revoke_device("victim").expect("revoke").epoch.epoch;
    let out = follow(&victim.dir, &["--epoch-file", file.to_str().expect("utf-8"), "--once"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stderr(&out);
    assert!(text.lines().last().is_some_and(|l| l.starts_with("smqtt: ")), "{text}");
    // The revocation is written all the same: the broker enforces it even though its own renewal failed.
    assert_eq!(held_epoch(&file, victim.identity.authority_key()), epoch2);
}

#[test]
fn the_loop_ends_with_exit_0_on_sigterm_and_bad_input_is_one_line() {
    let world = TestAuthority::new();
    let broker = world.device("broker", "role:broker", &[]);
    let file = world.dir.path().join("epoch.statement");
    let mut child = Command::new(BIN)
        .args(["follow", "--every", "1", "--store"])
        .arg(&broker.dir)
        .arg("--epoch-file")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("smqtt follow");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !file.exists() {
        assert!(Instant::now() < deadline, "the follower never wrote {}", file.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "{status:?}");

    // No store there: exit 2, one line. An interval of 0: clap's usage error (exit 2) naming the option.
    let missing = world.dir.path().join("no-store");
    let out = follow(&missing, &["--once"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(stderr(&out).trim_end().lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).starts_with("smqtt: ") && stderr(&out).contains("no-store"), "{}", stderr(&out));
    let out = follow(&broker.dir, &["--every", "0"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).lines().next().is_some_and(|l| l.contains("--every")), "{}", stderr(&out));
}
