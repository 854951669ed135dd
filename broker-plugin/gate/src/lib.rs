//! SMQTT broker-side enforcement (work in progress).
