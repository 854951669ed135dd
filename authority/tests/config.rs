//! The `authority.toml` the README shows works as written.

use smqtt_authority::{init, Authority, Config, UnsealWith};

#[test]
fn the_readme_configuration_snippet_loads_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README");
    let section = &readme[readme.find("## The key authority").expect("the authority's section")..];
    let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let snippet = &section[start..start + section[start..].find("```").expect("its end")];
    assert!(snippet.contains("statement_file"), "{snippet}");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("authority.toml");
    std::fs::write(&path, snippet).expect("write");
    let config = Config::load(&path).expect("the README's configuration loads");
    assert_eq!(config.data_dir, dir.path().join("data"));
    let statement_file = dir.path().join("epoch.statement");
    assert_eq!(config.epochs.statement_file.as_deref(), Some(statement_file.as_path()));

    // And an authority configured by it keeps the statement file.
    let key_file = config.unseal.key_file.clone().expect("the snippet names a key file");
    std::fs::write(&key_file, [0x11; 32]).expect("key file");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    init(&config.data_dir, &UnsealWith::KeyFile(key_file), &mut rand_core::OsRng, now).expect("init");
    let authority = Authority::open(config).expect("open");
    assert_eq!(authority.write_statement_file().expect("written"), Some(statement_file.as_path()));
    let text = std::fs::read_to_string(&statement_file).expect("statement");
    let verified = smqtt_wire::EpochStatement::parse(&text).and_then(|s| s.verify(&authority.verifying_key()));
    assert_eq!(verified.expect("verifies").epoch(), 1);
}
