//! Rough timing of one round trip and its parts (criterion benches live in `benches/`).
use std::time::Instant;

use smqtt_abe::hazmat::pairing_only;
use smqtt_abe::{setup, AttributeSet, Capsule, Policy};

fn main() -> Result<(), smqtt_abe::Error> {
    let mut rng = rand_core::OsRng;
    let (pk, msk) = setup(&mut rng)?;
    let names: Vec<String> = (0..10).map(|i| format!("attr{i}")).collect();
    let attrs = AttributeSet::parse(&names.join(","))?;
    let policy = Policy::parse(&names.join(" and "))?;
    for round in 0..4 {
        let t = Instant::now();
        let key = msk.keygen(&pk, &attrs, &mut rng)?;
        let t_keygen = t.elapsed();
        let t = Instant::now();
        let (dk, capsule) = pk.encapsulate(&policy, &mut rng)?;
        let t_enc = t.elapsed();
        let bytes = capsule.to_bytes();
        let t = Instant::now();
        let decoded = Capsule::from_bytes(&bytes)?;
        let t_decode = t.elapsed();
        let t = Instant::now();
        let dk2 = key.decapsulate(&pk, &decoded)?;
        let t_dec = t.elapsed();
        let t = Instant::now();
        let _ = pairing_only(&key, &decoded);
        let t_pair = t.elapsed();
        assert_eq!(dk, dk2);
        println!(
            "round {round}: keygen {t_keygen:?} encaps {t_enc:?} decode {t_decode:?} decaps {t_dec:?} pairing-only {t_pair:?}"
        );
    }
    Ok(())
}
