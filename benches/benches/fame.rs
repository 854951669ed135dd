//! FAME (smqtt-abe, BLS12-381) side by side with rabe's AC17 (the same scheme on BN254) and the floor, a bare
//! 6-pair multi-pairing. `cargo bench -p smqtt-benches --bench fame`; `scripts/bench-report.py` turns the
//! output into the README tables and plots.

use ark_bls12_381::{Bls12_381, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::pairing::Pairing;
use ark_ec::{CurveGroup, PrimeGroup};
use ark_std::UniformRand;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rabe::schemes::ac17;
use rabe::utils::policy::pest::PolicyLanguage;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use smqtt_abe::hazmat::pairing_only;
use smqtt_abe::{setup, AttributeSet, Capsule, Policy};

const SIZES: [usize; 6] = [1, 5, 10, 20, 50, 100];

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("attr{i}")).collect()
}

/// rabe's AND must be nested binary (a flat n-ary AND panics in rabe 0.4, `pitfalls.md` §5).
fn rabe_and(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => format!("\"{one}\""),
        [first, rest @ ..] => format!("(\"{first}\" and {})", rabe_and(rest)),
    }
}

fn ours_and(names: &[String]) -> Policy {
    Policy::parse(&names.join(" and ")).unwrap_or_else(|e| panic!("{e}"))
}

fn ours_or(names: &[String]) -> Policy {
    Policy::parse(&names.join(" or ")).unwrap_or_else(|e| panic!("{e}"))
}

fn configure<'a>(
    c: &'a mut Criterion,
    name: &str,
    n: usize,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(if n >= 50 { 10 } else { 20 });
    g.warm_up_time(std::time::Duration::from_millis(500));
    g.measurement_time(std::time::Duration::from_secs(if n >= 50 { 4 } else { 2 }));
    g
}

fn floor(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let g1: Vec<G1Affine> = (0..6).map(|_| (G1Projective::generator() * Fr::rand(&mut rng)).into_affine()).collect();
    let g2: Vec<G2Affine> = (0..6).map(|_| (G2Projective::generator() * Fr::rand(&mut rng)).into_affine()).collect();
    let mut g = c.benchmark_group("floor");
    g.bench_function("multi_pairing_6", |b| b.iter(|| Bls12_381::multi_pairing(g1.clone(), g2.clone())));
    g.finish();
}

fn setup_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("setup");
    g.sample_size(10);
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    g.bench_function("smqtt", |b| b.iter(|| setup(&mut rng)));
    g.bench_function("rabe", |b| b.iter(ac17::setup));
    g.finish();
}

fn keygen(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let (pk, msk) = setup(&mut rng).unwrap_or_else(|e| panic!("{e}"));
    let (_, rabe_msk) = ac17::setup();
    for n in SIZES {
        let names = names(n);
        let set = AttributeSet::parse(&names.join(",")).unwrap_or_else(|e| panic!("{e}"));
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut g = configure(c, "keygen", n);
        g.bench_with_input(BenchmarkId::new("smqtt", n), &n, |b, _| b.iter(|| msk.keygen(&pk, &set, &mut rng)));
        g.bench_with_input(BenchmarkId::new("rabe", n), &n, |b, _| b.iter(|| ac17::cp_keygen(&rabe_msk, &refs)));
        g.finish();
    }
}

fn encrypt(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let (pk, _) = setup(&mut rng).unwrap_or_else(|e| panic!("{e}"));
    let (rabe_pk, _) = ac17::setup();
    for n in SIZES {
        let names = names(n);
        let policy = ours_and(&names);
        let rabe_policy = rabe_and(&names);
        let mut g = configure(c, "encrypt", n);
        g.bench_with_input(BenchmarkId::new("smqtt", n), &n, |b, _| {
            b.iter(|| pk.encapsulate(&policy, &mut rng).map(|(_, c)| c.to_bytes()))
        });
        g.bench_with_input(BenchmarkId::new("rabe", n), &n, |b, _| {
            b.iter(|| ac17::cp_encrypt(&rabe_pk, &rabe_policy, b"0123456789abcdef", PolicyLanguage::HumanPolicy))
        });
        g.finish();
    }
}

fn decrypt(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let (pk, msk) = setup(&mut rng).unwrap_or_else(|e| panic!("{e}"));
    let (rabe_pk, rabe_msk) = ac17::setup();
    for n in SIZES {
        let names = names(n);
        let set = AttributeSet::parse(&names.join(",")).unwrap_or_else(|e| panic!("{e}"));
        let key = msk.keygen(&pk, &set, &mut rng).unwrap_or_else(|e| panic!("{e}"));
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let rabe_key = ac17::cp_keygen(&rabe_msk, &refs).unwrap_or_else(|e| panic!("{e}"));
        let and_bytes = pk.encapsulate(&ours_and(&names), &mut rng).map(|(_, c)| c.to_bytes()).unwrap_or_default();
        let or_bytes = pk.encapsulate(&ours_or(&names), &mut rng).map(|(_, c)| c.to_bytes()).unwrap_or_default();
        let and_capsule = Capsule::from_bytes(&and_bytes).unwrap_or_else(|e| panic!("{e}"));
        let rabe_ct = ac17::cp_encrypt(&rabe_pk, &rabe_and(&names), b"0123456789abcdef", PolicyLanguage::HumanPolicy)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut g = configure(c, "decrypt", n);
        // Full decryption: decode + validate every point, LSSS, 6-pair multi-pairing, FO check, KDF.
        g.bench_with_input(BenchmarkId::new("smqtt_and_full", n), &n, |b, _| {
            b.iter(|| Capsule::from_bytes(&and_bytes).and_then(|c| key.decapsulate(&pk, &c)))
        });
        g.bench_with_input(BenchmarkId::new("smqtt_or_full", n), &n, |b, _| {
            b.iter(|| Capsule::from_bytes(&or_bytes).and_then(|c| key.decapsulate(&pk, &c)))
        });
        // Decapsulation of an already decoded capsule, with and without the FO (CCA) check.
        g.bench_with_input(BenchmarkId::new("smqtt_and_decaps", n), &n, |b, _| {
            b.iter(|| key.decapsulate(&pk, &and_capsule))
        });
        g.bench_with_input(BenchmarkId::new("smqtt_and_pairing_only", n), &n, |b, _| {
            b.iter(|| pairing_only(&key, &and_capsule))
        });
        g.bench_with_input(BenchmarkId::new("rabe", n), &n, |b, _| b.iter(|| ac17::cp_decrypt(&rabe_key, &rabe_ct)));
        // rabe from its serialised form (serde JSON, its own format): the same user-visible operation as
        // `smqtt_*_full`, though rabe's decoding validates no point.
        let rabe_json = serde_json::to_vec(&rabe_ct).unwrap_or_default();
        g.bench_with_input(BenchmarkId::new("rabe_from_json", n), &n, |b, _| {
            b.iter(|| {
                serde_json::from_slice::<ac17::Ac17CpCiphertext>(&rabe_json).map(|ct| ac17::cp_decrypt(&rabe_key, &ct))
            })
        });
        g.finish();
    }
}

criterion_group!(benches, floor, setup_bench, keygen, encrypt, decrypt);
criterion_main!(benches);
