//! End-to-end tests of SMQTT across real processes; the tests are in `tests/system/` (one test binary).
//!
//! They start the workspace's binaries — `smqtt-authority`, `smqtt-broker`, `smqtt` — and Debian's Mosquitto
//! with `libsmqtt_mosquitto.so` as child processes on free loopback ports, and find them next to the test
//! executable (`target/<profile>/`). `cargo test --workspace --release` builds every binary and the plugin
//! first; with `-p smqtt-e2e` alone, run `cargo build --release --workspace` before.
