//! The embedded SMQTT broker (work in progress).
