//! The mirrored 2.0.x structs against fixed LP64 numbers and, where installed, against the real headers.

use std::mem::{offset_of, size_of};

use super::*;

/// The 2.0.x layouts on LP64 (x86_64, aarch64), as a C compiler lays out the header structs.
#[cfg(target_pointer_width = "64")]
#[test]
fn event_layouts_match_the_2_0_headers() {
    assert_eq!((offset_of!(EvtBasicAuth, username), offset_of!(EvtBasicAuth, password)), (16, 24));
    assert_eq!(size_of::<EvtBasicAuth>(), 64);
    assert_eq!(offset_of!(EvtAclCheck, access), 40);
    assert_eq!(offset_of!(EvtAclCheck, payloadlen), 44);
    assert_eq!((offset_of!(EvtAclCheck, qos), offset_of!(EvtAclCheck, retain)), (48, 49));
    assert_eq!((offset_of!(EvtAclCheck, future2), size_of::<EvtAclCheck>()), (56, 88));
    assert_eq!(offset_of!(EvtMessage, reason_string), 40);
    assert_eq!(offset_of!(EvtMessage, payloadlen), 48);
    assert_eq!((offset_of!(EvtMessage, qos), offset_of!(EvtMessage, reason_code)), (52, 53));
    assert_eq!((offset_of!(EvtMessage, retain), offset_of!(EvtMessage, future2)), (54, 56));
    assert_eq!(size_of::<EvtMessage>(), 88);
    assert_eq!((offset_of!(EvtDisconnect, reason), size_of::<EvtDisconnect>()), (16, 56));
    assert_eq!(size_of::<MosquittoOpt>(), 16);
}

/// The same numbers from a C compiler and the installed 2.0 headers (Debian `mosquitto-dev`), when both
/// are there; the crate itself never needs them.
#[test]
fn event_layouts_match_the_installed_headers() {
    let header = std::path::Path::new("/usr/include/mosquitto_broker.h");
    let cc = std::process::Command::new("cc").arg("--version").output();
    if !header.exists() || cc.is_err() {
        eprintln!("SKIPPED: no /usr/include/mosquitto_broker.h (apt-get install mosquitto-dev) or no cc");
        return;
    }
    let dir = std::env::temp_dir().join(format!("smqtt-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let source = dir.join("layout.c");
    std::fs::write(
        &source,
        r#"#include <stdio.h>
#include <stddef.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#define O(t, f) printf("%zu ", offsetof(struct t, f))
#define S(t) printf("%zu\n", sizeof(struct t))
int main(void) {
O(mosquitto_evt_basic_auth, client); O(mosquitto_evt_basic_auth, username);
O(mosquitto_evt_basic_auth, password); O(mosquitto_evt_basic_auth, future2); S(mosquitto_evt_basic_auth);
O(mosquitto_evt_acl_check, client); O(mosquitto_evt_acl_check, topic); O(mosquitto_evt_acl_check, payload);
O(mosquitto_evt_acl_check, properties); O(mosquitto_evt_acl_check, access);
O(mosquitto_evt_acl_check, payloadlen); O(mosquitto_evt_acl_check, qos); O(mosquitto_evt_acl_check, retain);
O(mosquitto_evt_acl_check, future2); S(mosquitto_evt_acl_check);
O(mosquitto_evt_message, client); O(mosquitto_evt_message, topic); O(mosquitto_evt_message, payload);
O(mosquitto_evt_message, properties); O(mosquitto_evt_message, reason_string);
O(mosquitto_evt_message, payloadlen); O(mosquitto_evt_message, qos); O(mosquitto_evt_message, reason_code);
O(mosquitto_evt_message, retain); O(mosquitto_evt_message, future2); S(mosquitto_evt_message);
O(mosquitto_evt_disconnect, client); O(mosquitto_evt_disconnect, reason); S(mosquitto_evt_disconnect);
O(mosquitto_opt, key); O(mosquitto_opt, value); S(mosquitto_opt);
printf("%d %d %d %d %d %d %d %d %d\n", MOSQ_EVT_ACL_CHECK, MOSQ_EVT_BASIC_AUTH, MOSQ_EVT_MESSAGE,
    MOSQ_EVT_DISCONNECT, MOSQ_ACL_READ, MOSQ_ACL_WRITE, MOSQ_ACL_SUBSCRIBE, MOSQ_ACL_UNSUBSCRIBE,
    MOSQ_PLUGIN_VERSION);
return 0;
}
"#,
    )
    .expect("write");
    let binary = dir.join("layout");
    let built = std::process::Command::new("cc").arg(&source).arg("-o").arg(&binary).status().expect("cc");
    assert!(built.success(), "cc failed on the installed headers");
    let out = std::process::Command::new(&binary).output().expect("run");
    let _ = std::fs::remove_dir_all(&dir);
    let rust = format!(
        "{} {} {} {} {}\n{} {} {} {} {} {} {} {} {} {}\n{} {} {} {} {} {} {} {} {} {} {}\n{} {} {}\n{} {} {}\n\
         {} {} {} {} {} {} {} {} {}\n",
        offset_of!(EvtBasicAuth, client),
        offset_of!(EvtBasicAuth, username),
        offset_of!(EvtBasicAuth, password),
        offset_of!(EvtBasicAuth, future2),
        size_of::<EvtBasicAuth>(),
        offset_of!(EvtAclCheck, client),
        offset_of!(EvtAclCheck, topic),
        offset_of!(EvtAclCheck, payload),
        offset_of!(EvtAclCheck, properties),
        offset_of!(EvtAclCheck, access),
        offset_of!(EvtAclCheck, payloadlen),
        offset_of!(EvtAclCheck, qos),
        offset_of!(EvtAclCheck, retain),
        offset_of!(EvtAclCheck, future2),
        size_of::<EvtAclCheck>(),
        offset_of!(EvtMessage, client),
        offset_of!(EvtMessage, topic),
        offset_of!(EvtMessage, payload),
        offset_of!(EvtMessage, properties),
        offset_of!(EvtMessage, reason_string),
        offset_of!(EvtMessage, payloadlen),
        offset_of!(EvtMessage, qos),
        offset_of!(EvtMessage, reason_code),
        offset_of!(EvtMessage, retain),
        offset_of!(EvtMessage, future2),
        size_of::<EvtMessage>(),
        offset_of!(EvtDisconnect, client),
        offset_of!(EvtDisconnect, reason),
        size_of::<EvtDisconnect>(),
        offset_of!(MosquittoOpt, key),
        offset_of!(MosquittoOpt, value),
        size_of::<MosquittoOpt>(),
        MOSQ_EVT_ACL_CHECK,
        MOSQ_EVT_BASIC_AUTH,
        MOSQ_EVT_MESSAGE,
        MOSQ_EVT_DISCONNECT,
        MOSQ_ACL_READ,
        MOSQ_ACL_WRITE,
        MOSQ_ACL_SUBSCRIBE,
        MOSQ_ACL_UNSUBSCRIBE,
        MOSQ_PLUGIN_VERSION,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), rust);
}
