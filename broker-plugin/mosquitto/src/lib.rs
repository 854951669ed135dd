//! SMQTT enforcement as a Mosquitto 2 plugin (work in progress).
