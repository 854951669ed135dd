//! The event logic against a scripted gate (no broker): sessions, the WRITE → MESSAGE hand-over, wills.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::*;

/// Accepts password "ok"; publishes: "plain" → Replace(b"sealed"), "good" → Accept, else Refuse.
#[derive(Default)]
struct Scripted {
    calls: Mutex<Vec<String>>,
}

impl Scripted {
    fn record(&self, call: String) {
        self.calls.lock().expect("lock").push(call);
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("lock").clone()
    }
}

fn decide(payload: &[u8]) -> Verdict {
    match payload {
        b"plain" => Verdict::Replace(b"sealed".to_vec()),
        b"good" => Verdict::Accept,
        _ => Verdict::Refuse("bad payload".into()),
    }
}

impl Enforcer for Scripted {
    type Session = String;

    fn authenticate(
        &self,
        client_id: &str,
        _: Option<&str>,
        password: Option<&[u8]>,
        _: Option<std::net::IpAddr>,
    ) -> Result<String, String> {
        self.record(format!("auth {client_id}"));
        if password == Some(b"ok") {
            Ok(client_id.to_owned())
        } else {
            Err("bad token".into())
        }
    }
    fn check_subscribe(&self, session: &String, filter: &str) -> Result<(), String> {
        self.record(format!("sub {session} {filter}"));
        if filter.starts_with("ok/") {
            Ok(())
        } else {
            Err("no".into())
        }
    }
    fn check_publish(&self, session: &String, topic: &str, _: u8, _: bool, payload: &[u8]) -> Verdict {
        self.record(format!("pub {session} {topic}"));
        decide(payload)
    }
    fn check_will(&self, client_id: &str, _: Option<&str>, topic: &str, _: u8, _: bool, payload: &[u8]) -> Verdict {
        self.record(format!("will {client_id} {topic}"));
        decide(payload)
    }
    fn check_will_for(&self, session: &String, topic: &str, _: u8, _: bool, payload: &[u8]) -> Verdict {
        self.record(format!("will-of {session} {topic}"));
        decide(payload)
    }
    fn metrics_text(&self) -> String {
        String::new()
    }
}

fn quiet(_: Level, _: &str) {}

fn plugin() -> (Plugin<Scripted>, Arc<Scripted>) {
    let gate = Arc::new(Scripted::default());
    (Plugin::new(gate.clone(), quiet), gate)
}

fn client(key: usize, id: &str) -> Client<'_> {
    Client { key, id: Some(id), username: Some(id), address: None }
}

#[test]
fn connect_subscribe_and_publish_hand_over_to_message() {
    let (p, gate) = plugin();
    let a = client(0x1000, "a");
    assert!(!p.basic_auth(&a, Some(b"wrong")));
    assert!(!p.basic_auth(&a, None));
    assert_eq!(p.session_count(), 0);
    assert!(p.basic_auth(&a, Some(b"ok")));
    assert_eq!(p.session_count(), 1);
    assert_eq!(p.acl_check(&a, AclAccess::Subscribe, "ok/#", 0, &[], 0, false), AclAction::Allow);
    assert_eq!(p.acl_check(&a, AclAccess::Subscribe, "secret/#", 0, &[], 0, false), AclAction::Deny);
    assert_eq!(p.acl_check(&a, AclAccess::Read, "secret/x", 7, b"x", 0, false), AclAction::Allow);
    assert_eq!(p.acl_check(&a, AclAccess::Unsubscribe, "secret/#", 0, &[], 0, false), AclAction::Allow);

    // Accepted: MESSAGE keeps it without asking the gate again.
    assert_eq!(p.acl_check(&a, AclAccess::Write, "t", 0xa0, b"good", 1, false), AclAction::Allow);
    assert_eq!(p.message(&a, "t", 0xa0, b"good", 1, false), MessageAction::Keep);
    // Sealed: MESSAGE replaces.
    assert_eq!(p.acl_check(&a, AclAccess::Write, "t", 0xb0, b"plain", 1, true), AclAction::Allow);
    assert_eq!(p.message(&a, "t", 0xb0, b"plain", 1, true), MessageAction::Replace(b"sealed".to_vec()));
    // Refused at WRITE: no MESSAGE follows in Mosquitto.
    assert_eq!(p.acl_check(&a, AclAccess::Write, "t", 0xc0, b"evil", 0, false), AclAction::Deny);
    let publishes = gate.calls().iter().filter(|c| c.starts_with("pub ")).count();
    assert_eq!(publishes, 3, "one gate call per message: {:?}", gate.calls());
    assert_eq!(p.counters().publishes_accepted.load(Ordering::Relaxed), 1);
    assert_eq!(p.counters().publishes_sealed.load(Ordering::Relaxed), 1);
    assert_eq!(p.counters().publishes_refused.load(Ordering::Relaxed), 1);
    assert_eq!(p.counters().connects_refused.load(Ordering::Relaxed), 2);

    // A MESSAGE the WRITE check did not see (another buffer) is decided on its own.
    assert_eq!(p.acl_check(&a, AclAccess::Write, "t", 0xd0, b"good", 0, false), AclAction::Allow);
    assert_eq!(p.message(&a, "t", 0xd1, b"evil", 0, false), MessageAction::Deny);
    // MESSAGE without a session (a bridge: Mosquitto skips its ACL checks) is refused.
    assert_eq!(p.message(&client(0x9000, "bridge"), "t", 0xe0, b"good", 0, false), MessageAction::Deny);
    let text = p.counters_text();
    assert!(text.contains("smqtt_mosquitto_publishes_sealed_total 1\n"), "{text}");
    assert!(text.contains("smqtt_mosquitto_sessions 1\n"), "{text}");
}

#[test]
fn wills_after_disconnect_and_on_takeover() {
    let (p, gate) = plugin();
    let old = client(0x1000, "dev");
    assert!(p.basic_auth(&old, Some(b"ok")));
    // Takeover: a new connection with the same client id; the old one's will fires before its disconnect.
    let new = client(0x2000, "dev");
    assert!(p.basic_auth(&new, Some(b"ok")));
    assert_eq!(p.acl_check(&old, AclAccess::Write, "will/t", 0x10, b"plain", 1, false), {
        AclAction::DenyAndPublish(b"sealed".to_vec())
    });
    assert_eq!(p.acl_check(&old, AclAccess::Subscribe, "ok/x", 0, &[], 0, false), AclAction::Deny);
    p.disconnect(old.key);
    // The newer session survives the old one's disconnect.
    assert_eq!(p.session_count(), 1);
    assert_eq!(p.acl_check(&new, AclAccess::Write, "t", 0x20, b"good", 0, false), AclAction::Allow);
    // Ordinary disconnect: the will check comes after MOSQ_EVT_DISCONNECT.
    p.disconnect(new.key);
    assert_eq!(p.session_count(), 0);
    assert_eq!(p.acl_check(&new, AclAccess::Write, "will/t", 0x30, b"good", 0, true), AclAction::Allow);
    assert_eq!(p.acl_check(&new, AclAccess::Write, "will/t", 0x40, b"evil", 0, true), AclAction::Deny);
    let wills: Vec<_> = gate.calls().into_iter().filter(|c| c.starts_with("will")).collect();
    assert_eq!(wills, ["will-of dev will/t", "will dev will/t", "will dev will/t"]);
    assert_eq!(p.counters().wills_checked.load(Ordering::Relaxed), 3);
    assert_eq!(p.counters().wills_refused.load(Ordering::Relaxed), 1);
    // A will without a client id is refused outright.
    let anonymous = Client { key: 0x5000, id: None, username: None, address: None };
    assert_eq!(p.acl_check(&anonymous, AclAccess::Write, "t", 0x50, b"good", 0, false), AclAction::Deny);
}

#[test]
fn stale_verdicts_do_not_leak_to_other_messages() {
    let (p, _) = plugin();
    let a = client(0x1000, "a");
    let b = client(0x2000, "b");
    assert!(p.basic_auth(&a, Some(b"ok")));
    assert!(p.basic_auth(&b, Some(b"ok")));
    // A's sealed verdict is not applied to B's message at the same address.
    assert_eq!(p.acl_check(&a, AclAccess::Write, "t", 0x10, b"plain", 0, false), AclAction::Allow);
    assert_eq!(p.message(&b, "t", 0x10, b"plain", 0, false), MessageAction::Replace(b"sealed".to_vec()));
    assert_eq!(p.message(&a, "t", 0x10, b"plain", 0, false), MessageAction::Replace(b"sealed".to_vec()));
    // After a disconnect, the verdict for that client is gone.
    assert_eq!(p.acl_check(&a, AclAccess::Write, "t", 0x20, b"good", 0, false), AclAction::Allow);
    p.disconnect(a.key);
    assert_eq!(p.message(&a, "t", 0x20, b"good", 0, false), MessageAction::Deny);
}

#[test]
fn refusal_log_is_rate_limited() {
    static LINES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    fn count(_: Level, _: &str) {
        LINES.fetch_add(1, Ordering::Relaxed);
    }
    let p = Plugin::new(Arc::new(Scripted::default()), count);
    for key in 0..500 {
        assert!(!p.basic_auth(&client(key, "x"), None));
    }
    assert!(LINES.load(Ordering::Relaxed) <= 2 * LOG_BURST_PER_SEC as usize, "{}", LINES.load(Ordering::Relaxed));
    assert_eq!(p.counters().connects_refused.load(Ordering::Relaxed), 500);
}
