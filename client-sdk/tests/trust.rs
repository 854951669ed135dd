//! The attacker between device and authority (plain HTTP on loopback): every answer that decides what a device
//! trusts must verify under the authority key it pinned at enrollment. Each test mounts one attack through a
//! real rewriting proxy in front of a real authority, checks that it fails and that nothing the device stores
//! changed, then that the honest path still works.

mod common;
#[path = "trust/proxy.rs"]
mod proxy;
mod tls_support;

use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::World;
use smqtt_abe::{AttributeSet, PublicKey};
use smqtt_authority_api::{ClientError, NewDevice};
use smqtt_client::{DeviceStore, Error};
use smqtt_wire::{seal_to, DeviceId, EpochBody, KeyDelivery, KeyRequest, SigningKey, VerifyingKey};

/// The attacker's own authority: FAME parameters and a signing key of its choosing.
struct Impostor {
    public: PublicKey,
    master: smqtt_abe::MasterKey,
    signer: SigningKey,
}

fn impostor() -> Arc<Impostor> {
    let (public, master) = smqtt_abe::setup(&mut rand_core::OsRng).expect("setup");
    Arc::new(Impostor { public, master, signer: SigningKey::generate(&mut rand_core::OsRng) })
}

fn world() -> World {
    World::new("127.0.0.1:9".parse().expect("addr"))
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("JSON")
}

fn unb64(value: &serde_json::Value) -> Vec<u8> {
    B64.decode(value.as_str().expect("string")).expect("base64")
}

/// The key request as the device signed it, rebuilt from its JSON body.
fn key_request(body: &[u8]) -> KeyRequest {
    let body = json(body);
    KeyRequest {
        device_id: DeviceId::new(body["device_id"].as_str().expect("id")).expect("id"),
        timestamp: body["timestamp"].as_u64().expect("timestamp"),
        nonce: unb64(&body["nonce"]).try_into().expect("16 bytes"),
        reply_key: unb64(&body["reply_key"]).try_into().expect("32 bytes"),
    }
}

/// A key of the impostor's parameters for `attributes`, sealed to the device's (public) reply key.
fn substitute_sealed_key(impostor: &Impostor, request: &KeyRequest, epoch: u64) -> Vec<u8> {
    let attributes = AttributeSet::parse(&format!("epoch:{epoch}, role:operator")).expect("attributes");
    let key = impostor.master.keygen(&impostor.public, &attributes, &mut rand_core::OsRng).expect("keygen");
    seal_to(&request.reply_key, &request.signing_bytes(), &key.to_bytes(), &mut rand_core::OsRng).expect("seal")
}

/// An epoch statement of the impostor's, for its own parameters.
fn impostor_statement(impostor: &Impostor, epoch: u64, started_at: u64) -> String {
    EpochBody { epoch, started_at, issued_at: common::now(), params_id: *impostor.public.id().as_bytes() }
        .sign(&impostor.signer)
}

/// Registers `id` (an operator that publishes nothing) and returns what `device add` returned.
fn register(world: &World, id: &str) -> smqtt_authority_api::DeviceCreated {
    let device =
        NewDevice { device_id: id.into(), attributes: "role:operator".into(), publish: vec![], token_ttl_secs: None };
    world.admin.add_device(&device).expect("add device")
}

/// Rewrites a `/v1/params` answer into the impostor's: its FAME key, its verifying key, its signed statement.
fn impostor_params(impostor: &Impostor, answer: &mut serde_json::Value) {
    answer["public_key"] = B64.encode(impostor.public.to_bytes()).into();
    answer["verifying_key"] = B64.encode(impostor.signer.verifying_key().to_bytes()).into();
    let (epoch, started) = (answer["epoch"]["epoch"].as_u64(), answer["epoch"]["started_at"].as_u64());
    answer["epoch"]["statement"] =
        impostor_statement(impostor, epoch.expect("epoch"), started.expect("started_at")).into();
}

fn enrolled(world: &World, id: &str) -> DeviceStore {
    world.device(id, "role:operator, site:berlin", &["plant/#"]).0
}

fn store_dir(world: &World, id: &str) -> std::path::PathBuf {
    world.dir.path().join(format!("store-{id}"))
}

/// Every file a renewal could change, to compare before and after an attack.
fn snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    ["public.key", "authority.pub", "user.key", "credential", "epoch.statement"]
        .iter()
        .map(|name| ((*name).to_owned(), std::fs::read(dir.join(name)).expect("store file")))
        .collect()
}

fn point_at(dir: &std::path::Path, url: &str) {
    std::fs::write(dir.join("authority.url"), url).expect("authority.url");
}

#[test]
fn renewal_through_an_on_path_proxy_cannot_swap_the_attribute_key() {
    let world = world();
    let store = enrolled(&world, "pub-1");
    let dir = store_dir(&world, "pub-1");
    let before = snapshot(&dir);
    let evil = impostor();
    let attacker = Arc::clone(&evil);
    // The attacker's key, sealed to the device's reply key; the authority's signature left as it was.
    let proxy = proxy::start(
        &world.authority_url,
        Arc::new(move |path, request, answer| {
            if path != "/v1/keys" {
                return answer;
            }
            let mut answer = json(&answer);
            let epoch = answer["epoch"]["epoch"].as_u64().expect("epoch");
            answer["sealed_key"] = B64.encode(substitute_sealed_key(&attacker, &key_request(request), epoch)).into();
            serde_json::to_vec(&answer).expect("json")
        }),
    );
    point_at(&dir, &proxy.url);
    let refused = store.renew();
    assert!(
        matches!(refused, Err(Error::Untrusted(ClientError::BadAuthoritySignature("key delivery")))),
        "{refused:?}"
    );
    assert_eq!(snapshot(&dir), before, "a refused renewal changed the store");

    // Honest path: the real authority, directly.
    point_at(&dir, &world.authority_url);
    assert_eq!(store.renew().expect("honest renewal").epoch(), 1);
}

#[test]
fn renewal_through_an_on_path_proxy_cannot_swap_the_fame_public_key() {
    let world = world();
    let store = enrolled(&world, "pub-2");
    let dir = store_dir(&world, "pub-2");
    let before = snapshot(&dir);
    let evil = impostor();
    let attacker = Arc::clone(&evil);
    // A complete forgery: the attacker's parameters everywhere, its key sealed to the device, its own signatures
    // over the delivery and the epoch; the real credential passed through.
    let proxy = proxy::start(
        &world.authority_url,
        Arc::new(move |path, request, answer| {
            let mut answer = json(&answer);
            match path {
                "/v1/params" => impostor_params(&attacker, &mut answer),
                "/v1/keys" => {
                    let request = key_request(request);
                    let (e, s) = (answer["epoch"]["epoch"].as_u64(), answer["epoch"]["started_at"].as_u64());
                    let epoch = e.expect("epoch");
                    let sealed = substitute_sealed_key(&attacker, &request, epoch);
                    let credential = unb64(&answer["credential"]);
                    let params = *attacker.public.id().as_bytes();
                    let signature =
                        KeyDelivery::new(&request, epoch, &params, &sealed, &credential).sign(&attacker.signer);
                    answer["sealed_key"] = B64.encode(&sealed).into();
                    answer["delivery_signature"] = B64.encode(signature).into();
                    answer["epoch"]["statement"] = impostor_statement(&attacker, epoch, s.expect("s")).into();
                }
                _ => {}
            }
            serde_json::to_vec(&answer).expect("json")
        }),
    );
    point_at(&dir, &proxy.url);
    let refused = store.renew();
    assert!(matches!(refused, Err(Error::Untrusted(ClientError::BadAuthoritySignature(_)))), "{refused:?}");
    assert_eq!(snapshot(&dir), before, "the pinned public key or authority key was replaced");
    // Renewal asks nothing of /v1/params: the pinned values are the only ones it uses.
    assert!(!proxy.seen.lock().expect("log").iter().any(|p| p == "/v1/params"));

    point_at(&dir, &world.authority_url);
    let identity = store.renew().expect("honest renewal");
    assert_eq!(identity.public_key().id(), PublicKey::from_bytes(&before[0].1).expect("pk").id());
}

#[test]
fn a_replayed_key_delivery_is_refused() {
    let world = world();
    let store = enrolled(&world, "pub-3");
    let dir = store_dir(&world, "pub-3");
    let captured: Arc<Mutex<Option<Vec<u8>>>> = Arc::new(Mutex::new(None));
    let replay = Arc::clone(&captured);
    // The first answer passes and is recorded; every later one is replaced by it.
    let proxy = proxy::start(
        &world.authority_url,
        Arc::new(move |path, _request, answer| {
            if path != "/v1/keys" {
                return answer;
            }
            let mut slot = replay.lock().expect("slot");
            slot.get_or_insert(answer).clone()
        }),
    );
    point_at(&dir, &proxy.url);
    store.renew().expect("the first renewal passes through");
    let before = snapshot(&dir);
    let refused = store.renew();
    assert!(
        matches!(refused, Err(Error::Untrusted(ClientError::BadAuthoritySignature("key delivery")))),
        "{refused:?}"
    );
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn enrollment_through_an_impostor_authority_is_refused() {
    let world = world();
    let created = register(&world, "new-1");
    let evil = impostor();
    let attacker = Arc::clone(&evil);
    let proxy = proxy::start(
        &world.authority_url,
        Arc::new(move |path, _request, answer| {
            if path != "/v1/params" {
                return answer;
            }
            let mut answer = json(&answer);
            impostor_params(&attacker, &mut answer);
            serde_json::to_vec(&answer).expect("json")
        }),
    );
    let dir = world.dir.path().join("store-new-1");
    let refused = DeviceStore::enroll(&dir, &proxy.url, &created.enrollment_token);
    assert!(matches!(refused, Err(Error::Untrusted(ClientError::AuthorityKeyMismatch { .. }))), "{refused:?}");
    // Refused before the token was spent, and nothing of the impostor's was kept.
    assert!(!proxy.seen.lock().expect("log").iter().any(|p| p == "/v1/enroll"));
    assert!(!dir.join("public.key").exists() && !dir.join("authority.pub").exists());

    // A key given out of band that is not the token's is refused too, before anything is sent.
    let wrong = SigningKey::generate(&mut rand_core::OsRng).verifying_key();
    let options = smqtt_client::EnrollOptions { authority_key: Some(wrong), authority_ca_pem: None };
    let refused = DeviceStore::enroll_pinned(&dir, &world.authority_url, &created.enrollment_token, &options);
    assert!(matches!(refused, Err(Error::Untrusted(ClientError::AuthorityKeyMismatch { .. }))), "{refused:?}");

    // Nor does the token travel in the clear to a host that is not loopback.
    let refused = DeviceStore::enroll(&dir, "http://192.0.2.1:8740", &created.enrollment_token);
    assert!(matches!(refused, Err(Error::InsecureAuthority(_))), "{refused:?}");

    // The honest enrollment with the same token still works, and pins the real authority.
    let identity = DeviceStore::enroll(&dir, &world.authority_url, &created.enrollment_token).expect("enroll");
    let real: [u8; 32] = std::fs::read(dir.join("authority.pub")).expect("pub").try_into().expect("32 bytes");
    assert_eq!(*identity.authority_key(), VerifyingKey::from_bytes(&real).expect("key"));
    assert_ne!(*identity.authority_key(), evil.signer.verifying_key());
}

#[test]
fn forged_epochs_do_not_pick_the_moment_of_renewal() {
    let world = world();
    let store = enrolled(&world, "sub-1");
    let dir = store_dir(&world, "sub-1");
    let evil = impostor();
    let attacker = Arc::clone(&evil);
    let proxy = proxy::start(
        &world.authority_url,
        Arc::new(move |path, _request, answer| {
            if path != "/v1/epoch" {
                return answer;
            }
            let mut answer = json(&answer);
            answer["epoch"] = 99.into();
            answer["statement"] = impostor_statement(&attacker, 99, 1).into();
            serde_json::to_vec(&answer).expect("json")
        }),
    );
    point_at(&dir, &proxy.url);
    let refused = store.authority_epoch();
    assert!(matches!(refused, Err(Error::Untrusted(_))), "{refused:?}");

    // Only the unsigned number changed: it disagrees with the signed statement next to it.
    let unsigned = proxy::start(
        &world.authority_url,
        Arc::new(move |path, _request, answer| {
            if path != "/v1/epoch" {
                return answer;
            }
            let mut answer = json(&answer);
            answer["epoch"] = 99.into();
            serde_json::to_vec(&answer).expect("json")
        }),
    );
    point_at(&dir, &unsigned.url);
    assert!(store.authority_epoch().is_err());

    point_at(&dir, &world.authority_url);
    assert_eq!(store.authority_epoch().expect("the real epoch"), 1);
}

#[test]
fn an_enrollment_whose_answer_was_lost_completes_when_run_again() {
    let world = world();
    let created = register(&world, "crash-1");
    // The authority commits the enrollment, but its answer never arrives (a crash, a cut connection).
    let proxy = proxy::start(
        &world.authority_url,
        Arc::new(|path, _request, answer| if path == "/v1/enroll" { b"{".to_vec() } else { answer }),
    );
    let dir = world.dir.path().join("store-crash-1");
    assert!(DeviceStore::enroll(&dir, &proxy.url, &created.enrollment_token).is_err());
    assert!(proxy.seen.lock().expect("log").iter().any(|p| p == "/v1/enroll"), "the authority saw the enrollment");
    let key = std::fs::read(dir.join("device.key")).expect("the device key was kept for the retry");

    let identity = DeviceStore::enroll(&dir, &world.authority_url, &created.enrollment_token).expect("retry");
    assert_eq!(identity.device_id().as_str(), "crash-1");
    assert_eq!(std::fs::read(dir.join("device.key")).expect("key"), key, "the same device key");
    assert_eq!(world.admin.show_device("crash-1").expect("device").status, "enrolled");
    // Once enrolled, the store is never overwritten.
    assert!(DeviceStore::enroll(&dir, &world.authority_url, &created.enrollment_token).is_err());
}

/// An authority on HTTPS with a private CA: the token goes only over TLS to it, the CA is kept in the store, and
/// renewals use it; without the CA the authority is not trusted at all.
#[test]
fn enrollment_and_renewal_over_https_with_a_private_ca() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = tls_support::Ca::new("authority-ca", dir.path());
    let server = ca.server("authority", &["localhost", "127.0.0.1"]);
    // Served over HTTPS from the start; the listener is bound before this returns (connections wait in its
    // backlog until the server accepts them: nothing to sleep for).
    let authority = smqtt_testkit::TestAuthority::builder().workers(1).tls(&server.cert, &server.key).start();
    let device = NewDevice {
        device_id: "tls-1".into(),
        attributes: "role:operator".into(),
        publish: vec![],
        token_ttl_secs: None,
    };
    let created = authority.authority.add_device("test", &device, common::now()).expect("add device");
    let url = authority.authority_url.clone();

    let store_dir = dir.path().join("store-tls-1");
    let untrusted = DeviceStore::enroll(&store_dir, &url, &created.enrollment_token);
    assert!(matches!(untrusted, Err(Error::Authority(_))), "an unknown CA was trusted: {untrusted:?}");
    let options = smqtt_client::EnrollOptions { authority_key: None, authority_ca_pem: Some(ca.pem().into_bytes()) };
    let identity = DeviceStore::enroll_pinned(&store_dir, &url, &created.enrollment_token, &options).expect("enroll");
    assert_eq!(identity.device_id().as_str(), "tls-1");
    assert_eq!(std::fs::read_to_string(store_dir.join("authority.ca.pem")).expect("CA kept"), ca.pem());
    assert_eq!(DeviceStore::at(&store_dir).renew().expect("renewal over HTTPS").epoch(), 1);
    assert_eq!(DeviceStore::at(&store_dir).authority_epoch().expect("epoch over HTTPS"), 1);
}

/// A store directory prepared by someone else (readable by others, or with a device key planted in it) is not
/// enrolled into: the device key would not be the device's alone.
#[test]
fn a_store_directory_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let world = world();
    let created = register(&world, "shared-1");
    let dir = world.dir.path().join("store-shared-1");
    std::fs::create_dir(&dir).expect("dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let refused = DeviceStore::enroll(&dir, &world.authority_url, &created.enrollment_token);
    assert!(matches!(refused, Err(Error::Store { .. })), "{refused:?}");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::write(dir.join("device.key"), [7u8; 32]).expect("planted key");
    std::fs::set_permissions(dir.join("device.key"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let refused = DeviceStore::enroll(&dir, &world.authority_url, &created.enrollment_token);
    assert!(matches!(refused, Err(Error::Store { .. })), "{refused:?}");
    std::fs::remove_file(dir.join("device.key")).expect("rm");
    DeviceStore::enroll(&dir, &world.authority_url, &created.enrollment_token).expect("a private directory enrolls");
}
