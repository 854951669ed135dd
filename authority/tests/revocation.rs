//! Revocation racing key requests: a device revoked while its key requests are in flight never receives a key
//! or credential of the epoch its revocation starts (nor of any later one).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use smqtt_abe::UserKey;
use smqtt_authority::{init, Authority, Config, Error, UnsealWith};
use smqtt_authority_api::{EnrollRequest, IssuedKey, KeyRequestBody, NewDevice};
use smqtt_wire::{
    enrollment_signing_bytes, DeviceId, KeyDelivery, KeyRequest, ReplySecret, SigningKey, UnverifiedCredential,
    ENROLL_DOMAIN,
};

const ROUNDS: usize = 30;
const THREADS: usize = 8;

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

fn authority(dir: &std::path::Path) -> Arc<Authority> {
    let data = dir.join("data");
    let key = dir.join("unseal.key");
    std::fs::write(&key, [0x5a; 32]).expect("key file");
    init(&data, &UnsealWith::KeyFile(key.clone()), &mut rand_core::OsRng, now()).expect("init");
    let mut config = Config::new(data);
    config.unseal.key_file = Some(key);
    Arc::new(Authority::open(config).expect("open"))
}

fn enrolled(authority: &Authority, id: &str) -> SigningKey {
    let created = authority
        .add_device(
            "admin:test",
            &NewDevice {
                device_id: id.into(),
                attributes: "role:sensor".into(),
                publish: vec![],
                token_ttl_secs: None,
            },
            now(),
        )
        .expect("add");
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let public = key.verifying_key();
    let signature = key.sign(ENROLL_DOMAIN, &enrollment_signing_bytes(&created.enrollment_token, &public));
    let request = EnrollRequest {
        token: created.enrollment_token,
        device_key: B64.encode(public.to_bytes()),
        signature: B64.encode(signature),
    };
    authority.enroll(&request, now()).expect("enroll");
    key
}

struct Received {
    issued: IssuedKey,
    reply: ReplySecret,
    request: KeyRequest,
}

fn request_key(authority: &Authority, id: &DeviceId, key: &SigningKey) -> Result<Received, Error> {
    let reply = ReplySecret::generate(&mut rand_core::OsRng);
    let mut nonce = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let request = KeyRequest { device_id: id.clone(), timestamp: now(), nonce, reply_key: reply.public() };
    let body = KeyRequestBody {
        device_id: id.as_str().into(),
        timestamp: request.timestamp,
        nonce: B64.encode(nonce),
        reply_key: B64.encode(request.reply_key),
        signature: B64.encode(request.sign(key)),
    };
    authority.issue_key(&body, now()).map(|issued| Received { issued, reply, request })
}

/// The epochs a received answer actually carries: the answer's label, the signed credential's, the attribute
/// key's `epoch:<N>` and the signed delivery's — which must all agree.
fn epochs_of(authority: &Authority, params_id: &[u8; 32], received: &Received) -> u64 {
    let vk = authority.verifying_key();
    let issued = &received.issued;
    let credential_bytes = B64.decode(&issued.credential).expect("credential base64");
    let credential =
        UnverifiedCredential::from_bytes(&credential_bytes).and_then(|c| c.verify(&vk, now())).expect("credential");
    let sealed = B64.decode(&issued.sealed_key).expect("sealed base64");
    let opened = received.reply.open(&received.request.signing_bytes(), &sealed).expect("opens");
    let user_key = UserKey::from_bytes(&opened).expect("user key");
    let epoch = issued.epoch.epoch;
    assert_eq!(credential.body().epoch, epoch, "credential and answer disagree");
    let attributes = user_key.attributes().to_string();
    assert!(attributes.split(", ").any(|a| a == format!("epoch:{epoch}")), "key attributes {attributes}");
    let signature: [u8; 64] =
        B64.decode(&issued.delivery_signature).expect("signature base64").try_into().expect("64 bytes");
    KeyDelivery::new(&received.request, epoch, params_id, &sealed, &credential_bytes)
        .verify(&vk, &signature)
        .expect("the delivery is signed for this epoch");
    epoch
}

fn params_id(authority: &Authority) -> [u8; 32] {
    let params = authority.params().expect("params");
    let public_key = smqtt_abe::PublicKey::from_bytes(&B64.decode(&params.public_key).expect("b64")).expect("pk");
    *public_key.id().as_bytes()
}

#[test]
fn revocation_racing_key_requests_never_issues_a_key_of_the_new_epoch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let authority = authority(dir.path());
    let params_id = params_id(&authority);
    let mut violations = Vec::new();
    let mut raced_rounds = 0;
    for round in 0..ROUNDS {
        let name = format!("victim-{round}");
        let id = DeviceId::new(&name).expect("id");
        let key = Arc::new(enrolled(&authority, &name));
        let received = Arc::new(Mutex::new(Vec::new()));
        let issued = Arc::new(AtomicUsize::new(0));
        let revoked_seen = Arc::new(AtomicBool::new(false));
        let start = Arc::new(Barrier::new(THREADS + 1));
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                let (authority, id, key, received, issued, revoked_seen, start) = (
                    authority.clone(),
                    id.clone(),
                    key.clone(),
                    received.clone(),
                    issued.clone(),
                    revoked_seen.clone(),
                    start.clone(),
                );
                std::thread::spawn(move || {
                    start.wait();
                    loop {
                        match request_key(&authority, &id, &key) {
                            Ok(answer) => {
                                received.lock().expect("lock").push(answer);
                                issued.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(Error::Revoked) => {
                                revoked_seen.store(true, Ordering::SeqCst);
                                return;
                            }
                            Err(other) => panic!("unexpected refusal: {other}"),
                        }
                    }
                })
            })
            .collect();
        start.wait();
        // Revoke while requests are in flight: once a few keys went out, so that every thread is mid-request.
        let deadline = Instant::now() + Duration::from_secs(20);
        while issued.load(Ordering::SeqCst) < THREADS / 2 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_micros(200 * (round % 7) as u64));
        let before = issued.load(Ordering::SeqCst);
        let revocation = authority.revoke("admin:test", &name, now()).expect("revoke");
        assert!(revocation.epoch_advanced);
        let new_epoch = revocation.epoch.epoch;
        for worker in workers {
            worker.join().expect("worker");
        }
        assert!(revoked_seen.load(Ordering::SeqCst), "round {round}: no request was refused after the revocation");
        let received = received.lock().expect("lock");
        if received.len() > before {
            raced_rounds += 1; // some requests in flight at the revocation still got (old-epoch) keys
        }
        for answer in received.iter() {
            let epoch = epochs_of(&authority, &params_id, answer);
            if epoch >= new_epoch {
                violations.push(format!("round {round}: {name} got a key and credential of epoch {epoch}"));
            }
        }
        // The audit log agrees: no key for the device after its revocation, none of the epoch it started.
        let log = authority.audit(10_000).expect("audit");
        let revoke_at = log
            .iter()
            .position(|e| e.action == "device.revoke" && e.subject == name)
            .expect("the revocation is audited");
        for entry in &log {
            if entry.action == "key.issue" && entry.subject == name && entry.detail == format!("epoch={new_epoch}") {
                violations.push(format!("round {round}: audit has key.issue {name} epoch={new_epoch}"));
            }
        }
        for entry in &log[revoke_at..] {
            if entry.action == "key.issue" && entry.subject == name {
                violations
                    .push(format!("round {round}: audit has key.issue {name} {} after device.revoke", entry.detail));
            }
        }
    }
    assert!(violations.is_empty(), "{} violations:\n{}", violations.len(), violations.join("\n"));
    assert!(authority.audit_verify().expect("verify").problem.is_none());
    eprintln!("{raced_rounds} of {ROUNDS} rounds had requests in flight at the revocation that still got keys");
}
