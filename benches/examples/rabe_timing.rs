//! Rough peer timing; the real comparison is `cargo bench -p smqtt-benches`.
use std::time::Instant;

use rabe::schemes::ac17;
use rabe::utils::policy::pest::PolicyLanguage;

fn nested_and(names: &[String]) -> String {
    match names {
        [one] => format!("\"{one}\""),
        [first, rest @ ..] => format!("(\"{first}\" and {})", nested_and(rest)),
        [] => String::new(),
    }
}

fn main() {
    let names: Vec<String> = (0..10).map(|i| format!("attr{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (pk, msk) = ac17::setup();
    let policy = nested_and(&names);
    for _ in 0..3 {
        let t = Instant::now();
        let sk = ac17::cp_keygen(&msk, &refs).expect("keygen");
        let kg = t.elapsed();
        let t = Instant::now();
        let ct = ac17::cp_encrypt(&pk, &policy, b"hello", PolicyLanguage::HumanPolicy).expect("encrypt");
        let enc = t.elapsed();
        let t = Instant::now();
        let pt = ac17::cp_decrypt(&sk, &ct).expect("decrypt");
        let dec = t.elapsed();
        assert_eq!(pt, b"hello");
        println!("rabe ac17 10 attrs: keygen {kg:?} encrypt {enc:?} decrypt {dec:?}");
    }
}
