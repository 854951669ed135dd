"""Third-party client check: python paho-mqtt (from PyPI) against smqtt-broker.

Usage: paho_client.py HOST PORT. Keep-alive 0, wildcards, QoS 0 and 1, a retained message for a late
subscriber, a will that fires on a broken connection, a denied subscription, and a client without a client id.
Exit 0 on success, 1 with a message on failure.
"""
import sys
import threading
import time

import paho.mqtt.client as mqtt

HOST, PORT = sys.argv[1], int(sys.argv[2])
TIMEOUT = 10


def client(name, keepalive=60, will=None):
    # Anonymous clients connect with client ids in their own space, "anon:…", or none at all.
    client_id = "anon:" + name if name else ""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    c.received = []
    c.granted = []
    c.got = threading.Condition()

    def on_message(_c, _u, msg):
        with c.got:
            c.received.append((msg.topic, msg.payload, msg.qos, msg.retain))
            c.got.notify_all()

    def on_subscribe(_c, _u, _mid, reason_codes, _props):
        with c.got:
            c.granted.append([int(rc.value) for rc in reason_codes])
            c.got.notify_all()

    c.on_message = on_message
    c.on_subscribe = on_subscribe
    if will:
        c.will_set(*will)
    rc = c.connect(HOST, PORT, keepalive=keepalive)
    if rc != 0:
        fail(f"{name}: connect returned {rc}")
    c.loop_start()
    return c


def wait(c, what, predicate):
    deadline = time.time() + TIMEOUT
    with c.got:
        while not predicate():
            left = deadline - time.time()
            if left <= 0:
                fail(f"timed out waiting for {what}; received {c.received}, granted {c.granted}")
            c.got.wait(left)


def fail(message):
    print("paho_client: FAIL:", message, flush=True)
    sys.exit(1)


sub = client("paho-sub")
sub.subscribe([("paho/+/x", 1), ("paho/#", 0)])
wait(sub, "suback", lambda: len(sub.granted) == 1)
if sub.granted[0] != [1, 0]:
    fail(f"granted {sub.granted[0]}")
sub.subscribe("test/nosubscribe", 1)
wait(sub, "denied suback", lambda: len(sub.granted) == 2)
if sub.granted[1] != [0x80]:
    fail(f"test/nosubscribe granted {sub.granted[1]}")

# Keep-alive 0 (MQTT: no keep-alive) and a will.
pub = client("paho-pub", keepalive=0, will=("paho/will", b"pub vanished", 1, False))
pub.publish("paho/a/x", b"qos1", qos=1).wait_for_publish(TIMEOUT)
pub.publish("paho/b", b"qos0", qos=0)
pub.publish("paho/r", b"retained", qos=1, retain=True).wait_for_publish(TIMEOUT)
wanted = {("paho/a/x", b"qos1"), ("paho/b", b"qos0"), ("paho/r", b"retained")}
wait(sub, "three messages", lambda: wanted <= {(t, p) for t, p, _, _ in sub.received})
# Overlapping filters: "paho/a/x" matches both; rumqttd delivers once per matching filter, Mosquitto once.
qos = max(q for t, p, q, _ in sub.received if t == "paho/a/x")
if qos != 1:
    fail(f"paho/a/x delivered with QoS {qos}")

late = client("paho-late")
late.subscribe("paho/r", 1)
wait(late, "retained message", lambda: any(t == "paho/r" and r for t, _, _, r in late.received))
# No client id (clean session): the broker names the anonymous client itself.
noid = client("")
noid.subscribe("paho/r", 1)
wait(noid, "retained message without a client id", lambda: any(t == "paho/r" for t, _, _, _ in noid.received))

# Break the publisher's connection without DISCONNECT: the will fires.
pub.loop_stop()
pub.socket().close()
wait(sub, "will", lambda: any(t == "paho/will" and p == b"pub vanished" for t, p, _, _ in sub.received))

for c in (sub, late, noid):
    c.disconnect()
    c.loop_stop()
print("paho_client: ok", flush=True)
