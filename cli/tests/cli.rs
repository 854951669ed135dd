//! The `smqtt` binary end to end: enroll, sub, pub through Mosquitto, with its exit codes.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use smqtt_authority_api::NewDevice;
use smqtt_testkit::mosquitto::MosquittoConfig;
use smqtt_testkit::TestAuthority;

const BIN: &str = env!("CARGO_BIN_EXE_smqtt");

#[test]
fn enroll_sub_pub_and_refusals() {
    let broker = MosquittoConfig::plain().log_subscriptions().start();
    let world = TestAuthority::new();
    let token = |id: &str, attrs: &str, publish: &[&str]| {
        world
            .admin
            .add_device(&NewDevice {
                device_id: id.into(),
                attributes: attrs.into(),
                publish: publish.iter().map(|s| s.to_string()).collect(),
                token_ttl_secs: None,
            })
            .expect("add")
            .enrollment_token
    };
    let store = |name: &str| world.dir.path().join(name);
    for (id, attrs, publish) in [("cli-pub", "role:sensor", &["t/#"][..]), ("cli-sub", "role:operator", &[][..])] {
        let out = Command::new(BIN)
            .args(["enroll", "--authority", &world.authority_url, "--token", &token(id, attrs, publish), "--store"])
            .arg(store(id))
            .output()
            .expect("enroll");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("enrolled {id}")));
    }
    let port = broker.addr.port().to_string();
    let mut sub = Command::new(BIN)
        .args(["sub", "-p", &port, "-i", "cli-sub/json", "-t", "t/#", "-C", "2", "--json", "--store"])
        .arg(store("cli-sub"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("sub");
    std::thread::sleep(std::time::Duration::from_millis(700));
    let publish = |topic: &str, policy: &str, message: &str| {
        Command::new(BIN)
            .args(["pub", "-p", &port, "-t", topic, "--policy", policy, "-m", message, "-q", "1", "--store"])
            .arg(store("cli-pub"))
            .output()
            .expect("pub")
    };
    assert!(publish("t/a", "role:operator", "hello operator").status.success());
    assert!(publish("t/b", "role:admin", "admins only").status.success());
    let lines: Vec<String> =
        BufReader::new(sub.stdout.take().expect("stdout")).lines().map(|l| l.expect("line")).collect();
    assert!(sub.wait().expect("wait").success());
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("\"payload\":\"hello operator\"") && lines[0].contains("\"publisher\":\"cli-pub\""),
        "{lines:?}"
    );
    assert!(lines[1].contains("\"error\":\"not_authorised\""), "{lines:?}");

    // A topic outside the credential: exit 1, one line. A bad policy or a missing store: exit 2, one line.
    for (out, code) in [(publish("other/x", "role:operator", "x"), 1), (publish("t/a", "role:operator and (", "x"), 2)]
    {
        assert_eq!(out.status.code(), Some(code), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim_end().lines().count(), 1, "{out:?}");
    }
    let out = Command::new(BIN)
        .args(["sub", "-p", &port, "-t", "t/#", "--store", "/nonexistent/store"])
        .output()
        .expect("sub");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("smqtt: device store"));
}
