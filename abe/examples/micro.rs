//! Micro timings of arkworks primitives on this machine.
use std::time::Instant;

use ark_bls12_381::{Bls12_381, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::pairing::Pairing;
use ark_ec::{AffineRepr, CurveGroup, PrimeGroup};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize, Validate, Compress};
use ark_std::UniformRand;

fn time<T>(name: &str, n: u32, mut f: impl FnMut() -> T) {
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(f());
    }
    println!("{name}: {:?}", t.elapsed() / n);
}

fn main() {
    let mut rng = rand_core::OsRng;
    let s = Fr::rand(&mut rng);
    let p = (G1Projective::generator() * s).into_affine();
    let q = (G2Projective::generator() * s).into_affine();
    time("g1 glv mul (projective)", 200, || G1Projective::from(p) * s);
    time("g2 mul", 50, || G2Projective::from(q) * s);
    let mut b1 = Vec::new();
    p.serialize_compressed(&mut b1).unwrap();
    let mut b2 = Vec::new();
    q.serialize_compressed(&mut b2).unwrap();
    time("g1 decompress no-validate", 200, || G1Affine::deserialize_with_mode(&b1[..], Compress::Yes, Validate::No).unwrap());
    time("g1 decompress validate", 200, || G1Affine::deserialize_compressed(&b1[..]).unwrap());
    time("g2 decompress no-validate", 100, || G2Affine::deserialize_with_mode(&b2[..], Compress::Yes, Validate::No).unwrap());
    time("g2 decompress validate", 100, || G2Affine::deserialize_compressed(&b2[..]).unwrap());
    time("g1 subgroup", 200, || p.is_in_correct_subgroup_assuming_on_curve());
    let g1s: Vec<G1Affine> = (0..6).map(|_| (G1Projective::generator() * Fr::rand(&mut rng)).into_affine()).collect();
    let g2s: Vec<G2Affine> = (0..6).map(|_| (G2Projective::generator() * Fr::rand(&mut rng)).into_affine()).collect();
    time("6-pair multi_pairing", 50, || Bls12_381::multi_pairing(g1s.clone(), g2s.clone()));
    let _ = G2Affine::generator();
}
