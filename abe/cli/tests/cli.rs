//! End-to-end tests of the real `smqtt-abe` binary in temporary directories.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use tempfile::TempDir;

/// What one run of the binary produced.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

/// Runs `smqtt-abe args...` in `dir`, feeding `stdin` (or nothing).
fn smqtt(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_smqtt-abe"))
        .args(args)
        .current_dir(dir)
        .env("TMPDIR", dir)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn smqtt-abe");
    let writer = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let bytes = bytes.to_vec();
        // A failed command may exit before reading everything; a broken pipe is fine then.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let output = child.wait_with_output().expect("wait for smqtt-abe");
    if let Some(writer) = writer {
        writer.join().expect("stdin writer");
    }
    Run {
        code: output.status.code().expect("exit code (not a signal)"),
        stdout: output.stdout,
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// Asserts success with an empty stderr.
fn assert_ok(run: &Run) {
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.stderr, "", "unexpected stderr");
}

/// Asserts exit `code` with exactly one stderr line starting `smqtt-abe: ` and containing `needle`.
fn assert_one_line_error(run: &Run, code: i32, needle: &str) {
    assert_eq!(run.code, code, "stderr: {}", run.stderr);
    assert!(run.stdout.is_empty(), "stdout should be empty on error");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one stderr line, got {:?}", run.stderr);
    assert!(lines[0].starts_with("smqtt-abe: "), "{:?}", lines[0]);
    assert!(lines[0].contains(needle), "{:?} does not contain {needle:?}", lines[0]);
}

/// Every byte value, several times over, so the round trips cover binary data.
fn binary_message() -> Vec<u8> {
    (0..=255u8).cycle().take(256 * 5 + 17).collect()
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// A temp dir holding `d/` (setup), `operator.key` and `intern.key`.
fn fixture() -> TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    assert_ok(&smqtt(dir, &["setup", "--dir", "d"], None));
    let operator = ["keygen", "--dir", "d", "--attrs", "role:operator,site:berlin,level=5", "-o", "operator.key"];
    assert_ok(&smqtt(dir, &operator, None));
    let intern = ["keygen", "--dir", "d", "--attrs", "role:intern, site:paris, level = 1", "-o", "intern.key"];
    assert_ok(&smqtt(dir, &intern, None));
    tmp
}

const POLICY: &str = "(role:operator and site:berlin) or role:admin";

#[test]
fn round_trip_over_files() {
    let tmp = fixture();
    let dir = tmp.path();
    let message = binary_message();
    fs::write(dir.join("msg.bin"), &message).expect("write message");
    assert_ok(&smqtt(dir, &["encrypt", "--dir", "d", "--policy", POLICY, "-i", "msg.bin", "-o", "msg.sealed"], None));
    let decrypt = ["decrypt", "--key", "operator.key", "--dir", "d", "-i", "msg.sealed", "-o", "out.bin"];
    assert_ok(&smqtt(dir, &decrypt, None));
    assert_eq!(fs::read(dir.join("out.bin")).expect("read plaintext"), message);
    assert_eq!(mode_of(&dir.join("out.bin")), 0o600, "decrypted plaintext is private");

    let show = smqtt(dir, &["policy", "show", "-i", "msg.sealed"], None);
    assert_ok(&show);
    assert_eq!(String::from_utf8_lossy(&show.stdout), format!("{POLICY}\n"));
}

#[test]
fn round_trip_over_stdin_and_stdout_with_pub_file() {
    let tmp = fixture();
    let dir = tmp.path();
    let message = binary_message();
    let sealed =
        smqtt(dir, &["encrypt", "--pub", "d/public.key", "--policy", "level >= 3 and site:berlin"], Some(&message));
    assert_ok(&sealed);
    assert!(sealed.stdout.starts_with(b"SMQA"));
    let opened = smqtt(
        dir,
        &["decrypt", "--key", "operator.key", "--pub", "d/public.key", "-i", "-", "-o", "-"],
        Some(&sealed.stdout),
    );
    assert_ok(&opened);
    assert_eq!(opened.stdout, message);

    // An empty message round-trips too.
    let empty = smqtt(dir, &["encrypt", "--dir", "d", "--policy", "role:operator"], Some(b""));
    assert_ok(&empty);
    let opened = smqtt(dir, &["decrypt", "--key", "operator.key", "--dir", "d"], Some(&empty.stdout));
    assert_ok(&opened);
    assert!(opened.stdout.is_empty());
}

#[test]
fn keygen_to_stdout_gives_a_working_key() {
    let tmp = fixture();
    let dir = tmp.path();
    let key = smqtt(dir, &["keygen", "--dir", "d", "--attrs", "role:admin", "-o", "-"], None);
    assert_ok(&key);
    fs::write(dir.join("admin.key"), &key.stdout).expect("write key");
    let sealed = smqtt(dir, &["encrypt", "--dir", "d", "--policy", POLICY], Some(b"for admins"));
    assert_ok(&sealed);
    let opened = smqtt(dir, &["decrypt", "--key", "admin.key", "--dir", "d"], Some(&sealed.stdout));
    assert_ok(&opened);
    assert_eq!(opened.stdout, b"for admins");
}

#[test]
fn unsatisfying_key_exits_1_and_writes_nothing() {
    let tmp = fixture();
    let dir = tmp.path();
    assert_ok(&smqtt(dir, &["encrypt", "--dir", "d", "--policy", POLICY, "-o", "msg.sealed"], Some(b"secret")));
    let decrypt = ["decrypt", "--key", "intern.key", "--dir", "d", "-i", "msg.sealed", "-o", "out.bin"];
    let run = smqtt(dir, &decrypt, None);
    assert_one_line_error(&run, 1, "does not satisfy the policy");
    assert!(!dir.join("out.bin").exists(), "no output file on failure");
    // The same over stdout: nothing at all is printed.
    let run = smqtt(dir, &["decrypt", "--key", "intern.key", "--dir", "d", "-i", "msg.sealed"], None);
    assert_one_line_error(&run, 1, "does not satisfy the policy");
}

#[test]
fn tampered_ciphertext_exits_2_and_leaves_existing_output_alone() {
    let tmp = fixture();
    let dir = tmp.path();
    let sealed = smqtt(dir, &["encrypt", "--dir", "d", "--policy", POLICY], Some(&binary_message()));
    assert_ok(&sealed);
    fs::write(dir.join("out.bin"), b"previous content").expect("write");

    let mut middle = sealed.stdout.clone();
    let half = middle.len() / 2;
    middle[half] ^= 0x01;
    fs::write(dir.join("middle.sealed"), &middle).expect("write");
    let decrypt = ["decrypt", "--key", "operator.key", "--dir", "d", "-i", "middle.sealed", "-o", "out.bin"];
    assert_one_line_error(&smqtt(dir, &decrypt, None), 2, "middle.sealed");

    // A flipped tag byte gets past every parser and fails authentication.
    let mut tag = sealed.stdout.clone();
    let last = tag.len() - 1;
    tag[last] ^= 0x80;
    fs::write(dir.join("tag.sealed"), &tag).expect("write");
    let decrypt = ["decrypt", "--key", "operator.key", "--dir", "d", "-i", "tag.sealed", "-o", "out.bin"];
    assert_one_line_error(&smqtt(dir, &decrypt, None), 2, "decryption failed");

    assert_eq!(fs::read(dir.join("out.bin")).expect("read"), b"previous content");
    let leftovers: Vec<_> = fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
}

#[test]
fn garbage_files_exit_2_with_one_line() {
    let tmp = fixture();
    let dir = tmp.path();
    fs::write(dir.join("garbage.key"), b"this is not a key\n").expect("write");
    let sealed = smqtt(dir, &["encrypt", "--dir", "d", "--policy", POLICY], Some(b"x"));
    assert_ok(&sealed);
    fs::write(dir.join("msg.sealed"), &sealed.stdout).expect("write");

    let run = smqtt(dir, &["decrypt", "--key", "garbage.key", "--dir", "d", "-i", "msg.sealed"], None);
    assert_one_line_error(&run, 2, "garbage.key: malformed user key");
    let run = smqtt(dir, &["decrypt", "--key", "operator.key", "--pub", "garbage.key", "-i", "msg.sealed"], None);
    assert_one_line_error(&run, 2, "malformed public key");
    let run = smqtt(dir, &["decrypt", "--key", "missing.key", "--dir", "d", "-i", "msg.sealed"], None);
    assert_one_line_error(&run, 2, "cannot read missing.key");
    let run = smqtt(dir, &["decrypt", "--key", "operator.key", "--dir", "d"], Some(b"SMQA garbage"));
    assert_one_line_error(&run, 2, "<stdin>: malformed sealed message");
    let run = smqtt(dir, &["policy", "show"], Some(b"not sealed"));
    assert_one_line_error(&run, 2, "malformed sealed message");

    // A key from another setup is reported as such.
    assert_ok(&smqtt(dir, &["setup", "--dir", "other"], None));
    let run = smqtt(dir, &["decrypt", "--key", "operator.key", "--dir", "other", "-i", "msg.sealed"], None);
    assert_one_line_error(&run, 2, "not all from the same setup");
}

#[test]
fn bad_policies_and_attributes_exit_2_with_one_line() {
    let tmp = fixture();
    let dir = tmp.path();
    let run = smqtt(dir, &["encrypt", "--dir", "d", "--policy", "(a and b"], Some(b"x"));
    assert_one_line_error(&run, 2, "--policy: policy syntax error at column 9");
    let run = smqtt(dir, &["encrypt", "--dir", "d", "--policy", "a or a"], Some(b"x"));
    assert_one_line_error(&run, 2, "--policy: attribute a appears more than once");
    let run = smqtt(dir, &["keygen", "--dir", "d", "--attrs", "a,,b", "-o", "k.key"], None);
    assert_one_line_error(&run, 2, "--attrs: invalid key attribute list: column 3");
    assert!(!dir.join("k.key").exists());
}

#[test]
fn policy_check_prints_the_canonical_form() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    for (input, canonical) in [
        ("2 of (dept:ops, dept:sec, clearance:high)", "2 of (dept:ops, dept:sec, clearance:high)"),
        ("2   OF(dept:ops,dept:sec ,clearance:high)", "2 of (dept:ops, dept:sec, clearance:high)"),
        ("a AND (b and c)", "a and b and c"),
        ("level>=3 and (zone:eu or zone:us)", "level >= 3 and (zone:eu or zone:us)"),
    ] {
        let run = smqtt(dir, &["policy", "check", input], None);
        assert_ok(&run);
        assert_eq!(String::from_utf8_lossy(&run.stdout), format!("{canonical}\n"), "{input}");
    }
    let run = smqtt(dir, &["policy", "check", "--json", "a and b"], None);
    assert_ok(&run);
    assert_eq!(String::from_utf8_lossy(&run.stdout), "{\"and\":[{\"attr\":\"a\"},{\"attr\":\"b\"}]}\n");
}

#[test]
fn policy_check_points_at_the_column_of_a_syntax_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = smqtt(tmp.path(), &["policy", "check", "(a and b or c"], None);
    assert_eq!(run.code, 2);
    assert!(run.stdout.is_empty());
    let lines: Vec<&str> = run.stderr.lines().collect();
    // One-line message first, then the policy and a caret under column 14 (end of input).
    assert_eq!(lines[0], "smqtt-abe: policy syntax error at column 14: expected `)`");
    assert_eq!(lines[1..], ["  (a and b or c", &format!("  {}^", " ".repeat(13))]);

    let run = smqtt(tmp.path(), &["policy", "check", "0 of (a, b)"], None);
    assert_one_line_error(&run, 2, "invalid threshold 0 of 2");
}

#[test]
fn setup_refuses_to_overwrite() {
    let tmp = fixture();
    let dir = tmp.path();
    let master = fs::read(dir.join("d/master.key")).expect("read");
    let public = fs::read(dir.join("d/public.key")).expect("read");
    let run = smqtt(dir, &["setup", "--dir", "d"], None);
    assert_one_line_error(&run, 2, "refusing to overwrite an existing setup");
    assert_eq!(fs::read(dir.join("d/master.key")).expect("read"), master);
    assert_eq!(fs::read(dir.join("d/public.key")).expect("read"), public);

    // Half a setup (only public.key) is refused as well, and nothing is added to it.
    fs::create_dir(dir.join("half")).expect("mkdir");
    fs::write(dir.join("half/public.key"), b"x").expect("write");
    assert_one_line_error(&smqtt(dir, &["setup", "--dir", "half"], None), 2, "public.key already exists");
    assert!(!dir.join("half/master.key").exists());
}

#[test]
fn secret_files_have_mode_0600() {
    let tmp = fixture();
    let dir = tmp.path();
    assert_eq!(mode_of(&dir.join("d/master.key")), 0o600);
    assert_eq!(mode_of(&dir.join("operator.key")), 0o600);
    assert_eq!(mode_of(&dir.join("intern.key")), 0o600);
    assert_eq!(mode_of(&dir.join("d")), 0o700);
}

#[test]
fn oversized_input_is_refused() {
    let tmp = fixture();
    let dir = tmp.path();
    // A sparse file one byte over the plaintext limit (64 MiB): cheap to create, refused before sealing.
    let big = dir.join("big.bin");
    let file = fs::File::create(&big).expect("create");
    let limit = smqtt_abe::limits::MAX_SEALED_PLAINTEXT as u64;
    file.set_len(limit + 1).expect("set_len");
    let run = smqtt(dir, &["encrypt", "--dir", "d", "--policy", "a", "-i", "big.bin", "-o", "big.sealed"], None);
    assert_one_line_error(&run, 2, "plaintext is larger than the limit of");
    assert!(!dir.join("big.sealed").exists());

    // The same through stdin.
    let stdin = fs::File::open(&big).expect("open");
    let output = Command::new(env!("CARGO_BIN_EXE_smqtt-abe"))
        .args(["encrypt", "--dir", "d", "--policy", "a"])
        .current_dir(dir)
        .stdin(stdin)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("smqtt-abe: <stdin>: plaintext is larger than the limit of"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    assert_eq!(smqtt(dir, &["encrypt", "--policy", "a"], Some(b"")).code, 2, "--dir or --pub required");
    assert_eq!(smqtt(dir, &["encrypt", "--policy", "a", "--dir", "d", "--pub", "p"], Some(b"")).code, 2);
    assert_eq!(smqtt(dir, &["frobnicate"], None).code, 2);
    assert_eq!(smqtt(dir, &["--help"], None).code, 0);
}

#[test]
fn demo_runs_and_cleans_up() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // `smqtt()` points TMPDIR at the test's directory, so the demo's scratch directory must vanish from it.
    let run = smqtt(tmp.path(), &["demo"], None);
    assert_ok(&run);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("PolicyNotSatisfied"), "{stdout}");
    assert!(stdout.contains("DecryptionFailed"), "{stdout}");
    assert_eq!(fs::read_dir(tmp.path()).expect("read_dir").count(), 0, "demo left files behind");
}
