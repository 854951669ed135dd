//! The README's first command, run for real: `smqtt-demo demo` must tell the story it promises and exit 0.

use std::process::Command;

#[test]
fn the_demo_runs_the_whole_system_and_exits_zero() {
    let output = Command::new(env!("CARGO_BIN_EXE_smqtt-demo"))
        .args(["demo", "--messages", "5"])
        .output()
        .expect("run smqtt-demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", output.status);
    let line = |start: &str| -> String {
        stdout.lines().filter(|l| l.trim_start().starts_with(start)).map(str::to_owned).collect::<Vec<_>>().join("\n")
    };
    // Round one: both Berlin subscribers read the temperature, only the admin the broker-sealed humidity.
    let alice = line("alice ");
    assert!(alice.contains("read temperature 5/5, humidity 0/5"), "{stdout}");
    let bob = line("bob ");
    assert!(bob.contains("read temperature 5/5, humidity 5/5"), "{stdout}");
    let carol = line("carol ");
    assert!(carol.contains("read temperature 0/5, humidity 0/5"), "{stdout}");
    // The onlooker sees ciphertext; the intruder's publish is refused by the broker.
    assert!(stdout.contains("0 contain plaintext"), "{stdout}");
    assert!(stdout.contains("reason=\"anonymous_read_only\"} 1"), "{stdout}");
    // Revocation: alice is refused and reads nothing of epoch 2; bob goes on.
    assert!(stdout.contains("refused by the authority"), "{stdout}");
    let alice_reads: Vec<&str> = alice.lines().filter(|l| l.contains(" read ")).collect();
    assert_eq!(alice_reads.len(), 2, "{stdout}");
    assert!(alice_reads[1].contains("read temperature 0/5, humidity 0/5"), "{stdout}");
    assert!(bob.lines().filter(|l| l.contains("read temperature 5/5, humidity 5/5")).count() == 2, "{stdout}");
    assert!(stdout.contains("[6/6] summary"), "{stdout}");
}
