//! Authentication, one-time tokens, replay, malformed input and the OpenAPI document, over a real socket.

mod common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use smqtt_authority_api::{ClientError, ErrorBody, KeyRequestBody, NewDevice};
use smqtt_wire::{KeyRequest, ReplySecret, SigningKey};

fn assert_json_error(status: u16, body: &str, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "body: {body}");
    let parsed: ErrorBody = serde_json::from_str(body).unwrap_or_else(|e| panic!("not a JSON error ({e}): {body}"));
    assert_eq!(parsed.error.code, want_code, "body: {body}");
    assert!(!parsed.error.message.contains('\n'));
}

const ADMIN_ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/v1/devices"),
    ("POST", "/v1/devices"),
    ("GET", "/v1/devices/x"),
    ("POST", "/v1/devices/x/revoke"),
    ("POST", "/v1/epoch/rotate"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/audit/verify"),
];

#[test]
fn admin_endpoints_refuse_missing_and_wrong_tokens() {
    let t = common::start(|_| {});
    let wrong = [None, Some("nope"), Some("smqtt-admin-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), Some("")];
    for (method, path) in ADMIN_ENDPOINTS {
        for token in wrong {
            let (status, body) = t.raw(method, path, Some("application/json"), b"{}", token);
            assert_json_error(status, &body, 401, "unauthorized");
        }
        // With the right token the same request gets past authentication.
        let (status, _) = t.raw(method, path, Some("application/json"), b"{}", Some(&t.admin_token));
        assert_ne!(status, 401, "{method} {path}");
    }
    // Nothing was changed by the refused calls.
    assert!(t.admin().list_devices().expect("list").devices.is_empty());
}

#[test]
fn enrollment_tokens_work_once_and_expire() {
    let t = common::start(|_| {});
    let new = |id: &str, ttl: Option<u64>| NewDevice {
        device_id: id.into(),
        attributes: "role:sensor".into(),
        publish: vec![],
        token_ttl_secs: ttl,
    };
    let created = t.admin().add_device(&new("s1", None)).expect("add");
    assert!(created.enrollment_token.starts_with("smqtt-enroll-"));
    let key = SigningKey::generate(&mut rand_core::OsRng);
    t.anonymous().enroll(&created.enrollment_token, &key).expect("first enrollment");
    let other = SigningKey::generate(&mut rand_core::OsRng);
    match t.anonymous().enroll(&created.enrollment_token, &other) {
        Err(ClientError::Http { status: 401, code, .. }) => assert_eq!(code, "invalid_token"),
        r => panic!("token reused: {r:?}"),
    }
    // The device keeps the key it enrolled with.
    let shown = t.admin().show_device("s1").expect("show");
    assert_eq!(shown.device_key, Some(B64.encode(key.verifying_key().to_bytes())));

    let short = t.admin().add_device(&new("s2", Some(1))).expect("add");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert!(matches!(
        t.anonymous().enroll(&short.enrollment_token, &other),
        Err(ClientError::Http { status: 401, .. })
    ));
    // A made-up token that pins the right authority gets to the authority, and is refused there.
    let made_up = smqtt_wire::enrollment_token(&[7; 32], &t.authority.verifying_key());
    assert!(matches!(t.anonymous().enroll(&made_up, &other), Err(ClientError::Http { status: 401, .. })));
    assert_eq!(t.admin().show_device("s2").expect("show").status, "pending");
}

/// The answer to an enrollment was lost (the client timed out, the authority crashed after committing): the
/// device retries with the same token and the same key and gets a credential again — never `invalid_token`.
/// Anyone else holding the token, with another key, still gets nothing.
#[test]
fn an_enrollment_retried_after_a_lost_answer_gets_its_credential_again() {
    let t = common::start(|_| {});
    let created = t
        .admin()
        .add_device(&NewDevice {
            device_id: "r1".into(),
            attributes: "role:sensor".into(),
            publish: vec!["r/#".into()],
            token_ttl_secs: None,
        })
        .expect("add");
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let first = t.anonymous().enroll(&created.enrollment_token, &key).expect("first enrollment");
    for _ in 0..2 {
        let again = t.anonymous().enroll(&created.enrollment_token, &key).expect("retry with the same key");
        assert_eq!(again.body().device_id.as_str(), "r1");
        assert_eq!(again.body().device_key, key.verifying_key());
        assert_eq!(again.body().epoch, first.body().epoch);
    }
    let thief = SigningKey::generate(&mut rand_core::OsRng);
    match t.anonymous().enroll(&created.enrollment_token, &thief) {
        Err(ClientError::Http { status: 401, code, .. }) => assert_eq!(code, "invalid_token"),
        r => panic!("token reused with another key: {r:?}"),
    }
    // The device keeps the key it enrolled with; the retries are audited as such.
    let shown = t.admin().show_device("r1").expect("show");
    assert_eq!(shown.device_key, Some(B64.encode(key.verifying_key().to_bytes())));
    let log = t.admin().audit(100).expect("audit");
    let count = |action: &str| log.entries.iter().filter(|e| e.action == action && e.subject == "r1").count();
    assert_eq!((count("device.enroll"), count("device.enroll.retry")), (1, 2));
    // Revoked since: the retry is refused as revoked (the caller proved it holds the device key).
    t.admin().revoke_device("r1").expect("revoke");
    match t.anonymous().enroll(&created.enrollment_token, &key) {
        Err(ClientError::Http { status: 403, code, .. }) => assert_eq!(code, "device_revoked"),
        r => panic!("revoked device re-enrolled: {r:?}"),
    }
}

/// H7. The enrollment retry (same token, same device key) replayed over and over, and after the token expired:
/// each replay was a credential, a signed audit entry and an fsync. A lost answer needs a few retries while the
/// token lives: at most 5, then the token is `invalid_token`, as it is once it expired.
#[test]
fn replaying_an_enrollment_retry_forever_and_after_expiry_is_refused() {
    let t = common::start(|_| {});
    let add = |id: &str| {
        let new =
            NewDevice { device_id: id.into(), attributes: "a".into(), publish: vec![], token_ttl_secs: Some(600) };
        t.admin().add_device(&new).expect("add")
    };
    let refused = |result: Result<_, ClientError>| match result {
        Err(ClientError::Http { status: 401, code, .. }) => assert_eq!(code, "invalid_token"),
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(credential) => panic!("replayed retry served: {credential:?}"),
    };
    let created = add("replayed");
    let key = SigningKey::generate(&mut rand_core::OsRng);
    t.anonymous().enroll(&created.enrollment_token, &key).expect("first enrollment");
    for _ in 0..5 {
        t.anonymous().enroll(&created.enrollment_token, &key).expect("a retry after a lost answer");
    }
    for _ in 0..3 {
        refused(t.anonymous().enroll(&created.enrollment_token, &key));
    }
    let log = t.admin().audit(1000).expect("audit");
    assert_eq!(
        log.entries.iter().filter(|e| e.action == "device.enroll.retry").count(),
        5,
        "refused replays unaudited"
    );
    // The device itself is fine: it renews with its key as any enrolled device does.
    let shown = t.admin().show_device("replayed").expect("show");
    assert_eq!(
        (shown.status.as_str(), shown.device_key),
        ("enrolled", Some(B64.encode(key.verifying_key().to_bytes())))
    );

    // After the token's expiry not even a first retry is served.
    let created = add("expired");
    let key = SigningKey::generate(&mut rand_core::OsRng);
    t.anonymous().enroll(&created.enrollment_token, &key).expect("first enrollment");
    let public = key.verifying_key();
    let signature =
        key.sign(smqtt_wire::ENROLL_DOMAIN, &smqtt_wire::enrollment_signing_bytes(&created.enrollment_token, &public));
    let request = smqtt_authority_api::EnrollRequest {
        token: created.enrollment_token.clone(),
        device_key: B64.encode(public.to_bytes()),
        signature: B64.encode(signature),
    };
    let later = created.token_expires_at;
    assert!(t.authority.enroll(&request, later - 1).is_ok(), "a retry before the expiry");
    assert!(matches!(t.authority.enroll(&request, later), Err(smqtt_authority::Error::TokenInvalid)));
    assert!(matches!(t.authority.enroll(&request, later + 86_400), Err(smqtt_authority::Error::TokenInvalid)));
}

#[test]
fn enrollment_requires_proof_of_possession() {
    let t = common::start(|_| {});
    let created = t
        .admin()
        .add_device(&NewDevice { device_id: "p".into(), attributes: "a".into(), publish: vec![], token_ttl_secs: None })
        .expect("add");
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let thief = SigningKey::generate(&mut rand_core::OsRng);
    // Claims `key` but signs with another key.
    let body = serde_json::json!({
        "token": created.enrollment_token,
        "device_key": B64.encode(key.verifying_key().to_bytes()),
        "signature": B64.encode(thief.sign(smqtt_wire::ENROLL_DOMAIN, &smqtt_wire::enrollment_signing_bytes(&created.enrollment_token, &key.verifying_key()))),
    });
    let (status, text) = t.raw("POST", "/v1/enroll", Some("application/json"), body.to_string().as_bytes(), None);
    assert_json_error(status, &text, 401, "unauthorized");
    // The token was not consumed by the failed attempt.
    t.anonymous().enroll(&created.enrollment_token, &key).expect("genuine enrollment");
}

fn key_request(id: &smqtt_wire::DeviceId, key: &SigningKey, timestamp: u64) -> KeyRequestBody {
    let reply = ReplySecret::generate(&mut rand_core::OsRng);
    let request = KeyRequest { device_id: id.clone(), timestamp, nonce: rand_nonce(), reply_key: reply.public() };
    KeyRequestBody {
        device_id: id.as_str().into(),
        timestamp,
        nonce: B64.encode(request.nonce),
        reply_key: B64.encode(request.reply_key),
        signature: B64.encode(request.sign(key)),
    }
}

fn rand_nonce() -> [u8; 16] {
    let mut n = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut n);
    n
}

#[test]
fn key_requests_are_signed_fresh_and_single_use() {
    let t = common::start(|_| {});
    let (id, key) = t.enrolled_device("k1", "role:sensor", &[]);
    let client = t.anonymous();
    let body = key_request(&id, &key, common::now());
    client.post_key_request(&body).expect("first use");
    match client.post_key_request(&body) {
        Err(ClientError::Http { status: 401, code, .. }) => assert_eq!(code, "replayed_request"),
        r => panic!("replay accepted: {r:?}"),
    }
    // Stale and future timestamps.
    for ts in [common::now() - 3600, common::now() + 3600] {
        match client.post_key_request(&key_request(&id, &key, ts)) {
            Err(ClientError::Http { status: 401, code, .. }) => assert_eq!(code, "stale_request"),
            r => panic!("stale request accepted: {r:?}"),
        }
    }
    // Signed by another key, or altered after signing.
    let impostor = SigningKey::generate(&mut rand_core::OsRng);
    assert!(matches!(
        client.post_key_request(&key_request(&id, &impostor, common::now())),
        Err(ClientError::Http { status: 401, .. })
    ));
    let mut altered = key_request(&id, &key, common::now());
    altered.reply_key = B64.encode(ReplySecret::generate(&mut rand_core::OsRng).public());
    assert!(matches!(client.post_key_request(&altered), Err(ClientError::Http { status: 401, .. })));
    // A device that was never enrolled, and one that does not exist.
    t.admin()
        .add_device(&NewDevice {
            device_id: "k2".into(),
            attributes: "a".into(),
            publish: vec![],
            token_ttl_secs: None,
        })
        .expect("add");
    let k2 = smqtt_wire::DeviceId::new("k2").expect("id");
    assert!(matches!(
        client.post_key_request(&key_request(&k2, &key, common::now())),
        Err(ClientError::Http { status: 401, .. })
    ));
    let ghost = smqtt_wire::DeviceId::new("ghost").expect("id");
    assert!(matches!(
        client.post_key_request(&key_request(&ghost, &key, common::now())),
        Err(ClientError::Http { status: 401, .. })
    ));
}

#[test]
fn malformed_requests_get_json_4xx_never_500() {
    let t = common::start(|c| c.limits.body_bytes = 4096);
    let admin = Some(t.admin_token.as_str());
    let json = Some("application/json");
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Vec<u8>, Option<&'a str>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        ("POST", "/v1/devices", json, b"{".to_vec(), admin, 400, "malformed_json"),
        ("POST", "/v1/devices", json, b"[1,2]".to_vec(), admin, 400, "invalid_request"),
        (
            "POST",
            "/v1/devices",
            json,
            br#"{"device_id":"a","attributes":"b","extra":1}"#.to_vec(),
            admin,
            400,
            "invalid_request",
        ),
        ("POST", "/v1/devices", json, br#"{"device_id":7,"attributes":"b"}"#.to_vec(), admin, 400, "invalid_request"),
        (
            "POST",
            "/v1/devices",
            Some("text/plain"),
            br#"{"device_id":"a","attributes":"b"}"#.to_vec(),
            admin,
            415,
            "unsupported_media_type",
        ),
        ("POST", "/v1/devices", json, vec![b' '; 10_000], admin, 413, "body_too_large"),
        (
            "POST",
            "/v1/enroll",
            json,
            br#"{"token":"x","device_key":"!!","signature":"AA=="}"#.to_vec(),
            None,
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/enroll",
            json,
            format!(r#"{{"token":"{}","device_key":"AA==","signature":"AA=="}}"#, "t".repeat(3000)).into_bytes(),
            None,
            401,
            "invalid_token",
        ),
        (
            "POST",
            "/v1/keys",
            json,
            br#"{"device_id":"../etc","timestamp":1,"nonce":"","reply_key":"","signature":""}"#.to_vec(),
            None,
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/keys",
            json,
            br#"{"device_id":"a","timestamp":-1,"nonce":"","reply_key":"","signature":""}"#.to_vec(),
            None,
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/keys",
            json,
            br#"{"device_id":"a","timestamp":1,"nonce":"AAAA","reply_key":"","signature":""}"#.to_vec(),
            None,
            400,
            "invalid_request",
        ),
        ("GET", "/v1/audit?limit=0", None, vec![], admin, 400, "invalid_request"),
        ("GET", "/v1/audit?limit=abc", None, vec![], admin, 400, "invalid_request"),
        ("GET", "/v1/nothing-here", None, vec![], None, 404, "not_found"),
        ("DELETE", "/v1/params", None, vec![], None, 405, "method_not_allowed"),
        ("GET", "/v1/devices/bad%20id", None, vec![], admin, 404, "not_found"),
    ];
    for (method, path, ct, body, token, want, code) in cases {
        let (status, text) = t.raw(method, path, ct, &body, token);
        assert!(status < 500, "{method} {path}: {status} {text}");
        assert_json_error(status, &text, want, code);
    }
    // The service is still healthy.
    assert_eq!(t.raw("GET", "/healthz", None, b"", None).0, 200);
}

#[test]
fn rate_limit_answers_429_per_client() {
    let t = common::start(|c| {
        c.limits.rate_per_sec = 1;
        c.limits.rate_burst = 5;
    });
    let statuses: Vec<u16> = (0..12).map(|_| t.raw("GET", "/v1/epoch", None, b"", None).0).collect();
    assert!(statuses[..5].iter().all(|s| *s == 200), "{statuses:?}");
    let (status, body) = t.raw("GET", "/v1/epoch", None, b"", None);
    assert_json_error(status, &body, 429, "rate_limited");
}

#[test]
fn metrics_count_requests_and_keys() {
    let t = common::start(|_| {});
    let (id, key) = t.enrolled_device("m1", "role:sensor", &[]);
    let params = t.anonymous().params().expect("params");
    t.anonymous().request_key(&params, &id, &key, &mut rand_core::OsRng).expect("key");
    let (status, text) = t.raw("GET", "/metrics", None, b"", None);
    assert_eq!(status, 200);
    assert!(text.contains("smqtt_authority_keys_issued_total 1"), "{text}");
    assert!(
        text.contains(r#"smqtt_authority_requests_total{route="/v1/keys",method="POST",status="200"} 1"#),
        "{text}"
    );
    assert!(text.contains("smqtt_authority_epoch 1"));
    // Secrets never show up in metrics.
    assert!(!text.contains(&t.admin_token));
}

/// Every path and method in the OpenAPI document is routed, and every route the API answers is documented.
#[test]
fn openapi_document_matches_the_routes() {
    let t = common::start(|_| {});
    let (status, text) = t.raw("GET", "/v1/openapi.json", None, b"", None);
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented = Vec::new();
    for (path, item) in paths {
        let concrete = path.replace("{id}", "some-device");
        for method in ["get", "post", "put", "delete", "patch"] {
            let (status, body) =
                t.raw(&method.to_uppercase(), &concrete, Some("application/json"), b"{}", Some(&t.admin_token));
            if item.get(method).is_some() {
                documented.push(format!("{method} {path}"));
                assert_ne!(status, 405, "{method} {path} is documented but not routed: {body}");
                if status == 404 {
                    let e: ErrorBody = serde_json::from_str(&body).expect("json");
                    assert_ne!(e.error.message, "no such endpoint", "{method} {path} is documented but not routed");
                }
            } else {
                assert!(status == 405 || status == 404, "{method} {path} answers {status} but is not documented");
            }
        }
        // Admin operations declare the bearer scheme.
        for (method, op) in item.as_object().expect("item") {
            let needs_admin = ADMIN_ENDPOINTS
                .iter()
                .any(|(m, p)| m.eq_ignore_ascii_case(method) && p.replace("/x", "/{id}") == *path);
            assert_eq!(op.get("security").is_some(), needs_admin, "{method} {path} security");
        }
    }
    assert_eq!(documented.len(), 14, "{documented:?}");

    // The schemas name every field the answers carry and require the ones always there (`statement` in every
    // epoch, `delivery_signature` with every key).
    let schemas = &doc["components"]["schemas"];
    let fits = |schema: &str, answer: &serde_json::Value| {
        let properties = schemas[schema]["properties"].as_object().expect("properties");
        let fields = answer.as_object().expect("an object");
        for field in fields.keys() {
            assert!(properties.contains_key(field), "{schema}.{field} is not documented");
        }
        for required in schemas[schema]["required"].as_array().expect("required") {
            let required = required.as_str().expect("name");
            assert!(fields.contains_key(required), "{schema}.{required} is required but missing: {answer}");
        }
    };
    let (_, epoch) = t.raw("GET", "/v1/epoch", None, b"", None);
    let epoch: serde_json::Value = serde_json::from_str(&epoch).expect("json");
    fits("EpochInfo", &epoch);
    assert!(epoch["statement"].as_str().is_some_and(|s| s.starts_with("smqtt-epoch1.")), "{epoch}");
    let (id, key) = t.enrolled_device("o1", "role:sensor", &[]);
    let body = serde_json::to_vec(&key_request(&id, &key, common::now())).expect("json");
    let (status, issued) = t.raw("POST", "/v1/keys", Some("application/json"), &body, None);
    assert_eq!(status, 200, "{issued}");
    let issued: serde_json::Value = serde_json::from_str(&issued).expect("json");
    fits("IssuedKey", &issued);
    fits("EpochInfo", &issued["epoch"]);
    assert!(schemas["EpochInfo"]["required"].as_array().expect("r").iter().any(|r| r == "statement"));
    assert!(schemas["IssuedKey"]["required"].as_array().expect("r").iter().any(|r| r == "delivery_signature"));
}
