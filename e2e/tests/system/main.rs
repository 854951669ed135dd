//! SMQTT end to end, across real processes: the authority (`smqtt-authority serve`, SQLite, sealed secrets), the
//! embedded broker (`smqtt-broker`, rumqttd + gate), Mosquitto with `libsmqtt_mosquitto.so`, the `smqtt` CLI and
//! in-process `smqtt_client::SmqttClient`s, all on free loopback ports. Every device is enrolled with
//! `smqtt enroll` against the authority process.
//!
//! One test binary with a module per concern; the tests take a lock and run one at a time (they time things
//! on a two-core machine). Each test keeps its temporary directory and prints the tail of every child's log
//! when it fails.
#![allow(unreachable_pub)]

mod harness;

mod authority_restart;
mod broker_restart;
mod load;
mod mqtt;
mod scenario;
