//! The smqtt-broker tests' world, from `smqtt-testkit`: one real authority shared by the tests of a binary,
//! devices enrolled with it, and smqtt-broker instances on free ports with the authority's key in their gate.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use smqtt_broker::RunningBroker;
use smqtt_client::Identity;
use smqtt_testkit::embedded::SmqttBroker;
use smqtt_testkit::TestAuthority;

pub use smqtt_testkit::clients::{options4, raw4, raw4_with, raw5, Seen4, Seen5};
pub use smqtt_testkit::credentials::{password_hash, token};
pub use smqtt_testkit::metrics::{metric_or_zero, scrape};
pub use smqtt_testkit::now;
pub use smqtt_testkit::packets::{login_packet, raw_connect, Will};
pub use smqtt_testkit::wait::{eventually, next, quiet, WAIT};

/// The authority every test of the binary shares (devices get distinct ids per test).
pub fn world() -> &'static TestAuthority {
    static WORLD: OnceLock<TestAuthority> = OnceLock::new();
    WORLD.get_or_init(TestAuthority::new)
}

/// Enrolls devices (id, attributes, publish rights) off the async workers (the authority client blocks): their
/// store directories and identities.
pub async fn devices(specs: Vec<(&'static str, &'static str, Vec<&'static str>)>) -> Vec<(PathBuf, Identity)> {
    tokio::task::spawn_blocking(move || {
        specs
            .into_iter()
            .map(|(id, attributes, publish)| {
                let enrolled = world().device(id, attributes, &publish);
                (enrolled.dir, enrolled.identity)
            })
            .collect()
    })
    .await
    .expect("enroll")
}

/// Starts smqtt-broker with v4 and v5 listeners and metrics on free ports and `gate` as its inline gate
/// configuration (the authority's key is prepended unless `gate` has an `[authority]` table or turns
/// enforcement off).
pub fn broker(gate: &str, dir: &Path) -> RunningBroker {
    let gate = if gate.contains("[gate.authority]") || gate.contains("enforcement = false") {
        gate.to_owned()
    } else {
        format!("[gate.authority]\nverifying_key = {:?}\n{gate}", world().authority_pub())
    };
    SmqttBroker::new().metrics().limits("max_segment_count = 2\n").gate(&gate).start(dir)
}
