//! Per-message cost of the SMQTT envelope with a cached session key, for 16 B, 256 B and 4 KiB payloads:
//!
//! * `seal`: [`seal_envelope`] (the session key is derived once, outside; AEAD + Ed25519 sign);
//! * `open`: [`ParsedEnvelope::parse`] + [`ParsedEnvelope::verify_signature`] + [`ParsedEnvelope::open`];
//! * `sign` / `verify`: the Ed25519 signature alone over the bytes an envelope of that payload signs (topic
//!   prefix and envelope without its signature);
//! * `seal_without_sign`: sealing without the signature, measured directly — every iteration times `seal` and
//!   `sign` alone on the same bytes back to back (alternating the order), a sample reports the median of the
//!   per-iteration differences, so both halves see the same machine load;
//! * `parse_open`: [`ParsedEnvelope::parse`] + [`ParsedEnvelope::open`], the receiving side without the
//!   signature (no subtraction needed: `open_unverified` (hazmat) skips `verify_signature`). `open − verify` from the
//!   separate benchmarks is printed as a cross-check only: two Ed25519 verifications compiled at different call
//!   sites were seen to differ by up to 20 % on this machine, more than the whole non-signature cost;
//! * `replay_check`: one [`ReplayWindow::check_and_record`] of a fresh sequence number (the last step a receiver
//!   takes);
//! * `aead_floor`: bare ChaCha20-Poly1305 encrypt + decrypt of the same payload in place (no AAD, cipher built
//!   once) — the floor;
//! * `sdk_roundtrip`: `smqtt_client::Sealer::seal` + `Opener::open` on a warmed session (default
//!   [`SessionPolicy`]: the capsule and credential ride on every 256th message, so that cost is amortised in).
//!
//! `cargo bench -p smqtt-benches --bench envelope`. Prints the envelope overhead in bytes during setup, and after
//! the run a Markdown summary (medians from criterion's estimates) that it also writes to `target/envelope.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit, Nonce};
use criterion::{black_box, BenchmarkId, Criterion, Throughput};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use smqtt_abe::{setup, AttributeSet, MasterKey, Policy, PublicKey, UserKey};
use smqtt_client::{policy_for_epoch, Opener, QoS, Sealer, SessionPolicy};
use smqtt_wire::{
    envelope_overhead, seal_envelope, seal_envelope_unsigned, CredentialBody, DeviceId, EnvelopeParts, ParsedEnvelope,
    ReplayWindow, SessionKey, SigningKey, TopicFilter, VerifyingKey, ENVELOPE_DOMAIN,
};

const SIZES: [usize; 3] = [16, 256, 4096];
const GROUP: &str = "envelope";
const TOPIC: &str = "plant/berlin/line1/temp";
const PUBLISHER: &str = "sensor-0001";
const POLICY: &str = "site:berlin and (role:operator or role:admin)";
const EPOCH: u64 = 1;
/// Target from the brief: publish + receive of a 256 B message without the signature.
const TARGET_US_WITHOUT_SIGNATURE: f64 = 3.0;

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Everything the benchmarks share: FAME parameters, a real capsule for the policy (with the epoch, as the SDK
/// encrypts), the session key it carries, a device key and an authority-signed credential.
#[derive(Debug)]
struct Fixture {
    public_key: Arc<PublicKey>,
    master: MasterKey,
    authority: SigningKey,
    device: SigningKey,
    publisher: DeviceId,
    capsule: Vec<u8>,
    credential: Vec<u8>,
    key: SessionKey,
}

impl Fixture {
    fn new() -> Fixture {
        let mut rng = ChaCha20Rng::seed_from_u64(0x5eed);
        let (public_key, master) = setup(&mut rng).expect("FAME setup");
        let policy = policy_for_epoch(&Policy::parse(POLICY).expect("policy"), EPOCH).expect("policy with the epoch");
        let (data_key, capsule) = public_key.encapsulate(&policy, &mut rng).expect("encapsulate");
        let capsule = capsule.to_bytes();
        let key = SessionKey::new(&data_key, &capsule);
        let authority = SigningKey::generate(&mut rng);
        let device = SigningKey::generate(&mut rng);
        let publisher = DeviceId::new(PUBLISHER).expect("device id");
        let now = now_secs();
        let credential = CredentialBody {
            device_id: publisher.clone(),
            device_key: device.verifying_key(),
            attributes: AttributeSet::parse("role:sensor, site:berlin").expect("attributes"),
            publish: vec![TopicFilter::new("plant/berlin/#").expect("filter")],
            epoch: EPOCH,
            not_before: now.saturating_sub(60),
            not_after: now + 86_400,
        }
        .sign(&authority)
        .expect("sign the credential");
        Fixture { public_key: Arc::new(public_key), master, authority, device, publisher, capsule, credential, key }
    }

    fn seal(&self, sequence: u64, payload: &[u8], with_capsule: bool) -> Vec<u8> {
        let parts = EnvelopeParts {
            publisher: &self.publisher,
            sequence,
            timestamp_ms: 1_700_000_000_000,
            capsule: with_capsule.then_some(self.capsule.as_slice()),
            credential: with_capsule.then_some(self.credential.as_slice()),
            retained: false,
        };
        seal_envelope(TOPIC, &parts, &self.key, payload, &self.device).expect("seal")
    }

    /// An unsigned envelope (wire.md §6.5) of the fixture session.
    fn seal_unsigned(&self, sequence: u64, payload: &[u8]) -> Vec<u8> {
        let parts = EnvelopeParts {
            publisher: &self.publisher,
            sequence,
            timestamp_ms: 1_700_000_000_000,
            capsule: None,
            credential: None,
            retained: false,
        };
        seal_envelope_unsigned(TOPIC, &parts, &self.key, payload).expect("seal")
    }

    /// A subscriber's attribute key that satisfies [`POLICY`] (with the epoch).
    fn user_key(&self) -> UserKey {
        let attributes =
            AttributeSet::parse(&format!("role:operator, site:berlin, epoch:{EPOCH}")).expect("attributes");
        self.master.keygen(&self.public_key, &attributes, &mut ChaCha20Rng::seed_from_u64(9)).expect("keygen")
    }

    fn verifying_key(&self) -> VerifyingKey {
        self.device.verifying_key()
    }
}

fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 + 7) as u8).collect()
}

/// `u16(len(topic)) ‖ topic ‖ envelope without its signature`: what an envelope's Ed25519 signature covers.
fn signed_bytes(envelope: &[u8]) -> Vec<u8> {
    let mut out = (TOPIC.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(TOPIC.as_bytes());
    out.extend_from_slice(&envelope[..envelope.len() - 64]);
    out
}

fn print_overheads(f: &Fixture) {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "envelope overhead (topic `{TOPIC}`, publisher `{PUBLISHER}` = {} B, policy `{POLICY}` + epoch):",
        PUBLISHER.len()
    );
    for size in SIZES {
        let p = payload(size);
        let bare = f.seal(0, &p, false).len() - size;
        let full = f.seal(0, &p, true).len() - size;
        let _ = writeln!(
            text,
            "  {size:>5} B payload: {bare} B without capsule+credential, {full} B with them \
             (capsule {} B, credential {} B)",
            f.capsule.len(),
            f.credential.len()
        );
    }
    let _ = writeln!(
        text,
        "  formula: envelope_overhead({}) = {} B, a capsule adds 4 + len, a credential 2 + len",
        PUBLISHER.len(),
        envelope_overhead(PUBLISHER.len())
    );
    print!("{text}");
}

/// `iters` × the median over `iters` iterations of (time of `whole` − time of `part`), the two run back to back
/// in alternating order. At least 1 ns per iteration (criterion refuses zero); a difference that is really
/// negative (noise) therefore shows as 0.00.
fn interleaved(iters: u64, mut whole: impl FnMut(), mut part: impl FnMut()) -> Duration {
    let mut diffs: Vec<i128> = Vec::with_capacity(usize::try_from(iters).unwrap_or(0));
    for i in 0..iters {
        let (w, p) = if i % 2 == 0 {
            let t0 = Instant::now();
            whole();
            let t1 = Instant::now();
            part();
            (t1 - t0, t1.elapsed())
        } else {
            let t0 = Instant::now();
            part();
            let t1 = Instant::now();
            whole();
            (t1.elapsed(), t1 - t0)
        };
        diffs.push(w.as_nanos() as i128 - p.as_nanos() as i128);
    }
    diffs.sort_unstable();
    let median = diffs.get(diffs.len() / 2).copied().unwrap_or(1).max(1);
    Duration::from_nanos(u64::try_from(median).unwrap_or(u64::MAX).saturating_mul(iters))
}

fn bench_envelope(c: &mut Criterion, f: &Fixture) {
    let vk = f.verifying_key();
    let mut g = c.benchmark_group(GROUP);
    for size in SIZES {
        let p = payload(size);
        g.throughput(Throughput::Bytes(size as u64));

        let mut sequence = 0u64;
        g.bench_with_input(BenchmarkId::new("seal", size), &p, |b, p| {
            b.iter(|| {
                sequence += 1;
                f.seal(sequence, black_box(p), false)
            })
        });

        let sealed = f.seal(1, &p, false);
        g.bench_with_input(BenchmarkId::new("open", size), &sealed, |b, sealed| {
            b.iter(|| {
                let envelope = ParsedEnvelope::parse(black_box(sealed)).expect("parse");
                envelope.verify_signature(TOPIC, &vk).expect("signature").open(&f.key).expect("open")
            })
        });

        let message = signed_bytes(&sealed);
        g.bench_with_input(BenchmarkId::new("sign", size), &message, |b, m| {
            b.iter(|| f.device.sign(ENVELOPE_DOMAIN, black_box(m)))
        });
        let signature_bytes = f.device.sign(ENVELOPE_DOMAIN, &message);
        g.bench_with_input(BenchmarkId::new("verify", size), &message, |b, m| {
            b.iter(|| vk.verify(ENVELOPE_DOMAIN, black_box(m), &signature_bytes).expect("verify"))
        });

        // The sealing cost without the signature (seal_envelope always signs): each iteration times the whole
        // operation and the signature alone on the same bytes back to back (alternating which goes first), and a sample
        // reports the median of the per-iteration differences — so both halves see the same load, and a
        // preemption in either half does not decide the result.
        let mut sequence = 1_000_000u64;
        g.bench_with_input(BenchmarkId::new("seal_without_sign", size), &p, |b, p| {
            b.iter_custom(|iters| {
                interleaved(
                    iters,
                    || {
                        sequence += 1;
                        drop(black_box(f.seal(sequence, black_box(p), false)));
                    },
                    || {
                        black_box(f.device.sign(ENVELOPE_DOMAIN, black_box(&message)));
                    },
                )
            })
        });
        // The receiving side without the signature, measured directly (`hazmat`: a receiver never skips it).
        g.bench_with_input(BenchmarkId::new("parse_open", size), &sealed, |b, sealed| {
            b.iter(|| {
                let envelope = ParsedEnvelope::parse(black_box(sealed)).expect("parse");
                envelope.open_unverified(TOPIC, &f.key).expect("open")
            })
        });

        // Unsigned envelopes (session-key authentication): the per-message cost without any signature, measured
        // directly.
        let mut sequence = 2_000_000u64;
        g.bench_with_input(BenchmarkId::new("seal_unsigned", size), &p, |b, p| {
            b.iter(|| {
                sequence += 1;
                f.seal_unsigned(sequence, black_box(p))
            })
        });
        let unsigned = f.seal_unsigned(1, &p);
        g.bench_with_input(BenchmarkId::new("parse_open_unsigned", size), &unsigned, |b, sealed| {
            b.iter(|| {
                let envelope = ParsedEnvelope::parse(black_box(sealed)).expect("parse");
                envelope.accept_unsigned(TOPIC).expect("unsigned").open(&f.key).expect("open")
            })
        });

        let cipher = ChaCha20Poly1305::new_from_slice(&[0x42; 32]).expect("32-byte key");
        let mut buffer = Vec::with_capacity(size + 16);
        let mut counter = 0u64;
        g.bench_with_input(BenchmarkId::new("aead_floor", size), &p, |b, p| {
            b.iter(|| {
                counter += 1;
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&counter.to_be_bytes());
                let nonce = Nonce::from(nonce);
                buffer.clear();
                buffer.extend_from_slice(black_box(p));
                cipher.encrypt_in_place(&nonce, b"", &mut buffer).expect("encrypt");
                cipher.decrypt_in_place(&nonce, b"", &mut buffer).expect("decrypt");
                black_box(buffer.len())
            })
        });

        // The SDK: a new Sealer/Opener pair per size, warmed (session started, capsule opened, credential cached).
        let mut rng = ChaCha20Rng::seed_from_u64(size as u64);
        let mut sealer = Sealer::new(
            f.publisher.clone(),
            SigningKey::from_bytes(&f.device.to_bytes()),
            f.credential.clone(),
            f.public_key.clone(),
            EPOCH,
            SessionPolicy::default(),
        );
        let mut opener = Opener::new(f.public_key.clone(), f.user_key(), f.authority.verifying_key(), EPOCH);
        let policy = Policy::parse(POLICY).expect("policy");
        let first = sealer.seal(TOPIC, &policy, &p, false, smqtt_wire::UnixTime::now(), &mut rng).expect("first seal");
        if size == SIZES[0] {
            println!("  Sealer, first message of a session ({size} B payload): {} B of overhead", first.len() - size);
        }
        opener.open(TOPIC, &first, QoS::AtMostOnce, false, smqtt_wire::UnixTime::now()).expect("first open");
        g.bench_with_input(BenchmarkId::new("sdk_roundtrip", size), &p, |b, p| {
            b.iter(|| {
                let sealed = sealer
                    .seal(TOPIC, &policy, black_box(p), false, smqtt_wire::UnixTime::now(), &mut rng)
                    .expect("seal");
                opener.open(TOPIC, &sealed, QoS::AtMostOnce, false, smqtt_wire::UnixTime::now()).expect("open")
            })
        });
        // The same in session-key authentication mode: only every 256th (capsule-bearing) envelope is signed.
        let mut sealer = Sealer::new(
            f.publisher.clone(),
            SigningKey::from_bytes(&f.device.to_bytes()),
            f.credential.clone(),
            f.public_key.clone(),
            EPOCH,
            SessionPolicy { sign_every_message: false, ..SessionPolicy::default() },
        );
        let mut opener = Opener::new(f.public_key.clone(), f.user_key(), f.authority.verifying_key(), EPOCH);
        opener.accept_unsigned(vec![TopicFilter::new("plant/#").expect("filter")]);
        let first = sealer.seal(TOPIC, &policy, &p, false, smqtt_wire::UnixTime::now(), &mut rng).expect("first seal");
        opener.open(TOPIC, &first, QoS::AtMostOnce, false, smqtt_wire::UnixTime::now()).expect("first open");
        g.bench_with_input(BenchmarkId::new("sdk_roundtrip_unsigned", size), &p, |b, p| {
            b.iter(|| {
                let sealed = sealer
                    .seal(TOPIC, &policy, black_box(p), false, smqtt_wire::UnixTime::now(), &mut rng)
                    .expect("seal");
                opener.open(TOPIC, &sealed, QoS::AtMostOnce, false, smqtt_wire::UnixTime::now()).expect("open")
            })
        });
    }
    g.finish();

    // Independent of the payload size.
    let mut g = c.benchmark_group(GROUP);
    let mut window = ReplayWindow::new(1024);
    let key_id = f.key.key_id();
    let mut sequence = 0u64;
    g.bench_function("replay_check", |b| {
        b.iter(|| {
            sequence += 1;
            window.check_and_record(&f.publisher, key_id, black_box(sequence)).expect("fresh sequence")
        })
    });
    g.finish();
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target"))
}

fn criterion_dir() -> PathBuf {
    std::env::var_os("CRITERION_HOME").map(PathBuf::from).unwrap_or_else(|| target_dir().join("criterion"))
}

/// The median of one benchmark, in µs, from this run's `estimates.json` (older files are ignored).
fn median_us(id: &str, since: SystemTime) -> Option<f64> {
    let path = criterion_dir().join(GROUP).join(id).join("new").join("estimates.json");
    let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    if modified < since {
        return None;
    }
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64().map(|ns| ns / 1e3)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"))
}

fn summary(since: SystemTime, load_before: &str) {
    let replay = median_us("replay_check", since);
    let mut md = String::new();
    let _ = writeln!(md, "# Envelope: per-message cost with a cached session key\n");
    let _ = writeln!(
        md,
        "Medians in µs (criterion). Topic `{TOPIC}`, publisher `{PUBLISHER}`. `open` = parse + \
         verify_signature + open; `sign` / `verify` = Ed25519 alone over the same signed bytes; \
         \"seal w/o sign\" = seal minus sign on the same bytes, timed back to back in each iteration (median \
         of the per-iteration differences); \"parse + open\" = the receiving side without verify_signature; \
         publish + receive w/o signature = seal w/o sign + parse + open + `replay_check` \
         ({} µs); with signature = seal + open + `replay_check`; `aead` = bare ChaCha20-Poly1305 \
         encrypt + decrypt in place; `sdk` = `Sealer::seal` + `Opener::open` (warmed, capsule + credential on \
         every 256th message). {} cores; load average {load_before} at start, {} at the end.\n",
        cell(replay),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    let _ = writeln!(
        md,
        "| payload | seal | sign | seal w/o sign | open | verify | parse + open | publish + receive w/o \
         signature | with signature | aead floor | sdk round trip | seal − sign, open − verify (separate runs) |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut at_256 = None;
    for size in SIZES {
        let get = |name: &str| median_us(&format!("{name}/{size}"), since);
        let (seal, open, sign, verify) = (get("seal"), get("open"), get("sign"), get("verify"));
        let (seal_bare, open_bare) = (get("seal_without_sign"), get("parse_open"));
        let without = seal_bare.zip(open_bare).zip(replay).map(|((a, b), r)| a + b + r);
        let with = seal.zip(open).zip(replay).map(|((a, b), r)| a + b + r);
        let separate =
            format!("{}, {}", cell(seal.zip(sign).map(|(a, b)| a - b)), cell(open.zip(verify).map(|(a, b)| a - b)));
        if size == 256 {
            at_256 = without;
        }
        let _ = writeln!(
            md,
            "| {size} B | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {separate} |",
            cell(seal),
            cell(sign),
            cell(seal_bare),
            cell(open),
            cell(verify),
            cell(open_bare),
            cell(without),
            cell(with),
            cell(get("aead_floor")),
            cell(get("sdk_roundtrip")),
        );
    }
    let _ = writeln!(
        md,
        "\nUnsigned envelopes (session-key authentication, docs/wire.md §6.5), measured directly: `seal` = \
         `seal_envelope_unsigned`, `parse + open` of its output, round trip = both + `replay_check`; `sdk` = \
         `Sealer` with `sign_every_message: false` + `Opener` with `accept_unsigned` (every 256th envelope \
         carries the capsule and is signed).\n"
    );
    let _ = writeln!(md, "| payload | seal | parse + open | round trip | sdk round trip |");
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|");
    let mut unsigned_256 = None;
    for size in SIZES {
        let get = |name: &str| median_us(&format!("{name}/{size}"), since);
        let (seal, open) = (get("seal_unsigned"), get("parse_open_unsigned"));
        let round = seal.zip(open).zip(replay).map(|((a, b), r)| a + b + r);
        if size == 256 {
            unsigned_256 = round;
        }
        let _ = writeln!(
            md,
            "| {size} B | {} | {} | {} | {} |",
            cell(seal),
            cell(open),
            cell(round),
            cell(get("sdk_roundtrip_unsigned"))
        );
    }
    let at_256 = unsigned_256.or(at_256);
    let verdict = match at_256 {
        Some(v) if v <= TARGET_US_WITHOUT_SIGNATURE => format!("{v:.2} µs — met"),
        Some(v) => format!("{v:.2} µs — not met"),
        None => "n/a (a benchmark was filtered out)".to_owned(),
    };
    let _ = writeln!(
        md,
        "\nTarget ≤ {TARGET_US_WITHOUT_SIGNATURE:.0} µs per 256 B message publish + receive without the \
         signature (the unsigned round trip): {verdict}."
    );
    print!("\n{md}");
    let dir = target_dir();
    let _ = std::fs::create_dir_all(&dir);
    let path = std::fs::canonicalize(&dir).unwrap_or(dir).join("envelope.md");
    match std::fs::write(&path, &md) {
        Ok(()) => eprintln!("envelope: wrote {}", path.display()),
        Err(e) => eprintln!("envelope: could not write {}: {e}", path.display()),
    }
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    // Give estimates files a little slack against coarse file system timestamps.
    let since = SystemTime::now() - Duration::from_secs(2);
    let load_before = load_average();
    let fixture = Fixture::new();
    print_overheads(&fixture);
    // No HTML plots: they take longer than the measurements; the summary below is the report.
    let mut criterion = Criterion::default()
        .without_plots()
        .warm_up_time(Duration::from_millis(800))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench_envelope(&mut criterion, &fixture);
    criterion.final_summary();
    if bench_mode {
        summary(since, &load_before);
    }
}
