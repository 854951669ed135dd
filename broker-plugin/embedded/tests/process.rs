//! The `smqtt-broker` binary as an operator runs it: it stops on SIGTERM and SIGINT with exit 0.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_smqtt-broker");

#[test]
fn sigterm_and_sigint_stop_the_broker_cleanly() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("broker.toml");
    std::fs::write(&config, "[v4]\nlisten = \"127.0.0.1:0\"\n[gate]\nenforcement = false\n").expect("config");
    for signal in ["TERM", "INT"] {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("smqtt-broker");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        while !line.contains("smqtt-broker: listening") {
            line.clear();
            assert!(stderr.read_line(&mut line).expect("stderr") > 0, "the broker ended before listening");
        }
        let status = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status();
        assert!(status.expect("kill").success());
        let started = Instant::now();
        let exit = loop {
            if let Some(exit) = child.try_wait().expect("wait") {
                break exit;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "still running 5 s after SIG{signal}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
        assert_eq!(exit.code(), Some(0), "SIG{signal}: {rest}");
        assert!(rest.contains(&format!("smqtt-broker: stopping (SIG{signal})")), "{rest}");
    }
}
