//! Load on the key authority: a real authority in-process on a loopback socket (its own tokio runtime, 2
//! workers), 64 enrolled devices with 10 attributes each, and 1, 4 and 16 client threads calling
//! `Client::request_key` in a loop for a fixed time. Next to it, the floor: raw `MasterKey::keygen` for the
//! same attributes on 1 and 2 threads (no HTTP, no database), so the report says what fraction of raw keygen
//! capacity the service reaches.
//!
//! `cargo bench -p smqtt-benches --bench authority_load`; `SMQTT_LOAD_SECONDS` sets the seconds per client
//! count (default 10). Prints a Markdown table and writes it to `target/authority-load.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand_core::OsRng;
use smqtt_abe::{setup, AttributeSet, MasterKey, PublicKey, UserKey};
use smqtt_authority::epoch_attribute;
use smqtt_authority_api::{Client, NewDevice, Params};
use smqtt_testkit::TestAuthority;
use smqtt_wire::{DeviceId, SigningKey};

const DEVICES: usize = 64;
const ATTRIBUTES: usize = 10;
const CONCURRENCY: [usize; 3] = [1, 4, 16];
const DEFAULT_SECONDS: f64 = 10.0;
/// Seconds per raw keygen measurement.
const RAW_SECONDS: f64 = 3.0;
/// Seconds for the client-side decode measurement.
const DECODE_SECONDS: f64 = 1.5;
/// Target from the brief: keys per second for 10-attribute keys.
const TARGET_KEYS_PER_SEC: f64 = 300.0;
/// Error messages kept per client thread.
const KEEP_ERRORS: usize = 5;

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("system clock before 1970").as_secs()
}

fn attribute_text() -> String {
    (0..ATTRIBUTES).map(|i| format!("attr{i}:x")).collect::<Vec<_>>().join(", ")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

#[derive(Debug)]
struct EnrolledDevice {
    id: DeviceId,
    key: SigningKey,
}

fn enroll_devices(server: &TestAuthority) -> Vec<EnrolledDevice> {
    let admin = Client::new(&server.authority_url).with_admin_token(&server.admin_token);
    let anonymous = Client::new(&server.authority_url);
    let attributes = attribute_text();
    (0..DEVICES)
        .map(|i| {
            let id = format!("load-{i:02}");
            let created = admin
                .add_device(&NewDevice {
                    device_id: id.clone(),
                    attributes: attributes.clone(),
                    publish: vec![format!("load/{id}")],
                    token_ttl_secs: None,
                })
                .unwrap_or_else(|e| panic!("add device {id}: {e}"));
            let key = SigningKey::generate(&mut OsRng);
            anonymous.enroll(&created.enrollment_token, &key).unwrap_or_else(|e| panic!("enroll {id}: {e}"));
            EnrolledDevice { id: DeviceId::new(&id).unwrap_or_else(|e| panic!("device id {id}: {e}")), key }
        })
        .collect()
}

#[derive(Debug, Default)]
struct ThreadResult {
    latencies: Vec<Duration>,
    errors: usize,
    messages: Vec<String>,
}

#[derive(Debug)]
struct LoadRow {
    clients: usize,
    ok: usize,
    errors: usize,
    messages: Vec<String>,
    elapsed: Duration,
    /// Sorted.
    latencies: Vec<Duration>,
}

impl LoadRow {
    fn keys_per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// Nearest-rank percentile in milliseconds.
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.latencies.len()) - 1;
        self.latencies[index].as_secs_f64() * 1e3
    }

    fn max_ms(&self) -> f64 {
        self.latencies.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    }
}

/// One signed key request whose answer is checked for shape but not opened: the bench measures the service, and
/// opening (X25519 + decoding 11 key parts with point validation, ~5 ms) would take the same two cores from it.
/// Every [`FULL_CHECK_EVERY`]th request goes through [`one_request`] and is opened and checked in full.
fn signed_request(client: &Client, device: &EnrolledDevice) -> Result<(), String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let reply = smqtt_wire::ReplySecret::generate(&mut OsRng);
    let mut nonce = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut OsRng, &mut nonce);
    let request =
        smqtt_wire::KeyRequest { device_id: device.id.clone(), timestamp: now(), nonce, reply_key: reply.public() };
    let body = smqtt_authority_api::KeyRequestBody {
        device_id: device.id.as_str().to_owned(),
        timestamp: request.timestamp,
        nonce: b64.encode(nonce),
        reply_key: b64.encode(request.reply_key),
        signature: b64.encode(request.sign(&device.key)),
    };
    let issued = client.post_key_request(&body).map_err(|e| e.to_string())?;
    if issued.sealed_key.len() < 1000 || issued.credential.is_empty() {
        return Err("answer without a key".to_owned());
    }
    Ok(())
}

/// Full check every this many requests per thread.
const FULL_CHECK_EVERY: usize = 20;

/// One key request, opened; a key that is not for the expected attributes counts as an error.
fn one_request(client: &Client, params: &Params, device: &EnrolledDevice) -> Result<(), String> {
    let keys = client.request_key(params, &device.id, &device.key, &mut OsRng).map_err(|e| e.to_string())?;
    let parts = keys.user_key.attributes().len();
    if parts != ATTRIBUTES + 1 {
        return Err(format!("key has {parts} attributes, expected {}", ATTRIBUTES + 1));
    }
    Ok(())
}

fn run_load(url: &str, params: &Params, devices: &[EnrolledDevice], clients: usize, seconds: f64) -> LoadRow {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let results: Vec<ThreadResult> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|t| {
                // Thread t cycles through the devices t, t + C, t + 2C, …
                let mine: Vec<&EnrolledDevice> = devices.iter().skip(t).step_by(clients).collect();
                scope.spawn(move || {
                    let client = Client::new(url);
                    let mut result = ThreadResult { latencies: Vec::with_capacity(4096), ..ThreadResult::default() };
                    for (n, device) in mine.iter().cycle().enumerate() {
                        let began = Instant::now();
                        if began >= deadline {
                            break;
                        }
                        let outcome = if n % FULL_CHECK_EVERY == 0 {
                            one_request(&client, params, device)
                        } else {
                            signed_request(&client, device)
                        };
                        match outcome {
                            Ok(()) => result.latencies.push(began.elapsed()),
                            Err(e) => {
                                result.errors += 1;
                                if result.messages.len() < KEEP_ERRORS {
                                    result.messages.push(format!("{}: {e}", device.id.as_str()));
                                }
                            }
                        }
                    }
                    result
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client thread panicked")).collect()
    });
    let elapsed = start.elapsed();
    let mut latencies: Vec<Duration> = Vec::new();
    let mut errors = 0;
    let mut messages = Vec::new();
    for r in results {
        latencies.extend(r.latencies);
        errors += r.errors;
        messages.extend(r.messages);
    }
    latencies.sort_unstable();
    LoadRow { clients, ok: latencies.len(), errors, messages, elapsed, latencies }
}

#[derive(Debug)]
struct RawRow {
    label: &'static str,
    threads: usize,
    keys: usize,
    elapsed: Duration,
}

impl RawRow {
    fn keys_per_sec(&self) -> f64 {
        self.keys as f64 / self.elapsed.as_secs_f64()
    }
}

fn raw_keygen(
    label: &'static str,
    pk: &PublicKey,
    msk: &MasterKey,
    set: &AttributeSet,
    threads: usize,
    seconds: f64,
) -> RawRow {
    // Warm the label hash cache (the service's cache is warm too).
    msk.keygen(pk, set, &mut OsRng).expect("warm-up keygen");
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let keys: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let mut n = 0usize;
                    while Instant::now() < deadline {
                        let key = msk.keygen(pk, set, &mut OsRng).expect("keygen");
                        std::hint::black_box(&key);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("keygen thread panicked")).sum()
    });
    RawRow { label, threads, keys, elapsed: start.elapsed() }
}

/// Milliseconds per `UserKey::from_bytes` (the client-side decoding each key request pays, on the same cores).
fn decode_ms(key: &UserKey, seconds: f64) -> f64 {
    let bytes = key.to_bytes();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut n = 0usize;
    while Instant::now() < deadline {
        let decoded = UserKey::from_bytes(&bytes).expect("decode a user key");
        std::hint::black_box(&decoded);
        n += 1;
    }
    start.elapsed().as_secs_f64() * 1e3 / n.max(1) as f64
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target"))
}

fn seconds_per_row() -> f64 {
    match std::env::var("SMQTT_LOAD_SECONDS") {
        Ok(text) => match text.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && s > 0.0 && s <= 600.0 => s,
            _ => panic!("SMQTT_LOAD_SECONDS must be a number of seconds in (0, 600], got {text:?}"),
        },
        Err(_) => DEFAULT_SECONDS,
    }
}

fn main() {
    // `cargo test --benches` runs bench binaries without `--bench`: do nothing there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("authority_load: run with `cargo bench -p smqtt-benches --bench authority_load`; skipping");
        return;
    }
    let seconds = seconds_per_row();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load_before = load_average();
    let bench_start = Instant::now();

    eprintln!("authority_load: starting the authority and enrolling {DEVICES} devices …");
    // The authority, served on 127.0.0.1:0 by a thread of its own (two workers); stops when dropped.
    let server = TestAuthority::new();
    let devices = enroll_devices(&server);
    let params = Client::new(&server.authority_url).params().expect("fetch public parameters");
    let epoch = params.epoch.epoch;

    // Warm-up: one key per device (label hashes, SQLite pages, connections); every one must succeed.
    let warm = Client::new(&server.authority_url);
    for device in &devices {
        one_request(&warm, &params, device)
            .unwrap_or_else(|e| panic!("warm-up key request for {}: {e}", device.id.as_str()));
    }
    drop(warm);

    let mut load_rows = Vec::new();
    for clients in CONCURRENCY {
        eprintln!("authority_load: {clients} client thread(s) for {seconds} s …");
        let row = run_load(&server.authority_url, &params, &devices, clients, seconds);
        if row.errors > 0 {
            eprintln!("authority_load: {} error(s) with {clients} clients:", row.errors);
            for m in &row.messages {
                eprintln!("  {m}");
            }
        }
        load_rows.push(row);
    }
    drop(server);
    let load_after_http = load_average();

    eprintln!("authority_load: raw keygen …");
    let (pk, msk) = setup(&mut OsRng).expect("FAME setup");
    let plain = AttributeSet::parse(&attribute_text()).expect("parse the attribute set");
    let with_epoch = AttributeSet::parse(&format!("{}, {}", attribute_text(), epoch_attribute(epoch)))
        .expect("parse the attribute set with the epoch");
    let mut raw_rows = Vec::new();
    for (label, set) in [("10", &plain), ("10 + epoch (as served)", &with_epoch)] {
        for threads in [1, 2] {
            raw_rows.push(raw_keygen(label, &pk, &msk, set, threads, RAW_SECONDS));
        }
    }
    let sample = msk.keygen(&pk, &with_epoch, &mut OsRng).expect("sample key");
    let decode = decode_ms(&sample, DECODE_SECONDS);
    let load_after = load_average();

    let best =
        |label: &str| raw_rows.iter().filter(|r| r.label == label).map(RawRow::keys_per_sec).fold(f64::NAN, f64::max);
    let raw10 = best("10");
    let raw11 = best("10 + epoch (as served)");

    let mut md = String::new();
    let _ = writeln!(md, "# Authority load: `request_key` over loopback HTTP\n");
    let _ = writeln!(
        md,
        "{DEVICES} enrolled devices, each `{}` (the authority adds `{}`: 11 key parts). One in-process \
         authority (axum, tokio with 2 workers, SQLite), clients are blocking `smqtt_authority_api::Client`s \
         (ureq, keep-alive) in the same process, one per thread. {seconds} s per row, {cores} cores. \
         Load average (1/5/15 min): {load_before} at start, {load_after_http} after the HTTP rows, \
         {load_after} at the end.\n",
        attribute_text(),
        epoch_attribute(epoch)
    );
    let _ = writeln!(
        md,
        "| clients | keys | errors | keys/s | p50 ms | p90 ms | p99 ms | max ms | of raw keygen, 10 attrs | \
         of raw keygen, 11 parts |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &load_rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} % | {:.0} % |",
            r.clients,
            r.ok,
            r.errors,
            r.keys_per_sec(),
            r.percentile_ms(50.0),
            r.percentile_ms(90.0),
            r.percentile_ms(99.0),
            r.max_ms(),
            100.0 * r.keys_per_sec() / raw10,
            100.0 * r.keys_per_sec() / raw11,
        );
    }
    let _ = writeln!(
        md,
        "\nFloor: raw `MasterKey::keygen` (smqtt-abe, rayon inside; no HTTP, no database), {RAW_SECONDS} s \
         per row, same process after the server stopped. \"of raw keygen\" above is against the best row of \
         each set.\n"
    );
    let _ = writeln!(md, "| attributes | caller threads | keys | keys/s | ms per key (wall / threads) |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    for r in &raw_rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} | {:.2} |",
            r.label,
            r.threads,
            r.keys,
            r.keys_per_sec(),
            1e3 * r.threads as f64 / r.keys_per_sec()
        );
    }
    let best_http = load_rows.iter().map(LoadRow::keys_per_sec).fold(f64::NAN, f64::max);
    let _ = writeln!(
        md,
        "\nClient side, per key: `UserKey::from_bytes` (11 parts, with point validation) takes {decode:.2} ms; \
         it is inside the latencies above and competes with the authority for the same cores.\n\n\
         Target ≥ {TARGET_KEYS_PER_SEC:.0} keys/s for 10-attribute keys: best {best_http:.1} keys/s — {}. \
         Whole run {:.1} s.",
        if best_http >= TARGET_KEYS_PER_SEC { "met" } else { "not met" },
        bench_start.elapsed().as_secs_f64()
    );

    print!("{md}");
    let dir = target_dir();
    let _ = std::fs::create_dir_all(&dir);
    let path = std::fs::canonicalize(&dir).unwrap_or(dir).join("authority-load.md");
    match std::fs::write(&path, &md) {
        Ok(()) => eprintln!("authority_load: wrote {}", path.display()),
        Err(e) => eprintln!("authority_load: could not write {}: {e}", path.display()),
    }
    let errors: usize = load_rows.iter().map(|r| r.errors).sum();
    if errors > 0 {
        eprintln!("authority_load: {errors} request error(s) in total (expected 0)");
        std::process::exit(1);
    }
}
