#!/usr/bin/env python3
"""Writes the hand-made seed corpora of wire/fuzz's text and small-format targets (and abe/fuzz's
capsule_peek_policy), from docs/vectors/wire/ and the seeds the tests write for envelope_decode and
capsule_decode. Run from the repository root after those change:

    python3 wire/fuzz/make_seeds.py            # rewrites the directories listed below
    python3 wire/fuzz/make_seeds.py OUT        # writes under OUT/ instead (to compare)

Targets: epoch_statement, enrollment_token, device_id, topic_filter, claimed_publisher, key_delivery_open
(wire/fuzz/corpus/) and capsule_peek_policy (abe/fuzz/corpus/). The other targets' seeds are written by the
tests named in the fuzz READMEs.
"""
import base64
import binascii
import os
import shutil
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else "."
V = "docs/vectors/wire/"


def payload(name):
    """The hex payload of a vector file: the lines after its first blank line."""
    lines = open(V + name).read().split("\n")
    i = lines.index("")
    return binascii.unhexlify("".join(l.strip() for l in lines[i + 1:] if l.strip()))


def reset(d):
    d = os.path.join(OUT, d)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    return d


def write(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def b64(x):
    return base64.urlsafe_b64encode(x).rstrip(b"=").decode()


# epoch_statement: the statements of docs/vectors/wire/epoch-statement-*.txt and a few more shapes.
d = reset("wire/fuzz/corpus/epoch_statement")
for n in ["ok", "flipped-epoch", "flipped-signature", "truncated", "unsigned-number", "wrong-prefix"]:
    write(d, "valid" if n == "ok" else n, payload(f"epoch-statement-{n}.txt"))
ok = payload("epoch-statement-ok.txt")
write(d, "trailing-newline", ok + b"\n")
write(d, "padded", ok.replace(b"smqtt-epoch1.", b"smqtt-epoch1.=", 1))
write(d, "empty", b"")

# enrollment_token: tokens pinning the fixture authority key (seed 0x11 x 32, docs/vectors/wire/*.txt).
d = reset("wire/fuzz/corpus/enrollment_token")
vk = binascii.unhexlify("d04ab232742bb4ab3a1368bd4615e4e6d0224ab71a016baf8520a332c9778737")
tok = "smqtt-enroll-" + b64(bytes([1] * 32)) + "." + b64(vk)
write(d, "valid", tok)
write(d, "valid-newline", tok + "\n")
write(d, "short-secret", "smqtt-enroll-AAAA." + b64(vk))
write(d, "no-key", "smqtt-enroll-" + b64(bytes([1] * 32)))
write(d, "short-key", "smqtt-enroll-AAAA.AAAA")
write(d, "padded-key", "smqtt-enroll-AAAA." + b64(vk) + "=")
write(d, "trailing-char", tok + "A")
write(d, "low-order-key", "smqtt-enroll-AAAA." + b64(bytes(32)))
write(d, "wrong-prefix", tok.replace("enroll", "enrol"))
write(d, "empty", "")

# device_id
d = reset("wire/fuzz/corpus/device_id")
for n, t in [("valid", "sensor-7"), ("valid-alphabet", "A-Z_a.z-0.9"), ("valid-dots", "..."),
             ("valid-64", "x" * 64), ("long-65", "x" * 65), ("dot", "."), ("dotdot", ".."), ("space", "a b"),
             ("slash", "a/b"), ("nul", "a\0"), ("umlaut", "ä"), ("empty", "")]:
    write(d, n, t)

# topic_filter: first byte = length of the filter text, then filter, then topic.
d = reset("wire/fuzz/corpus/topic_filter")


def tf(f, t):
    f = f.encode()
    return bytes([len(f)]) + f + t.encode()


for n, (f, t) in {
    "valid-plus": ("plant/berlin/+/temperature", "plant/berlin/hall-3/temperature"),
    "valid-hash": ("plant/#", "plant"), "valid-hash-deep": ("plant/#", "plant/a/b/c"),
    "valid-all": ("#", "a/b"), "dollar": ("#", "$SYS/broker"), "dollar-plus": ("+/broker", "$SYS/broker"),
    "dollar-exact": ("$SYS/#", "$SYS/x"), "empty-levels": ("a//b", "a//b"), "plus-empty-level": ("a/+/b", "a//b"),
    "no-match": ("a/b", "a/c"), "bad-hash": ("a/#/b", "a/x/b"), "bad-plus": ("a+", "a+"), "nul": ("a\0", "a"),
    "wildcard-topic": ("a/+", "a/+"), "empty": ("", ""), "unicode": ("ä/ö", "ä/ö"),
}.items():
    write(d, n, tf(f, t))
write(d, "long-filter", bytes([255]) + b"a/" * 127 + b"a" + b"a/" * 127 + b"a")

# claimed_publisher: envelopes of envelope_decode's corpus (written by wire/tests/envelope_vectors.rs).
d = reset("wire/fuzz/corpus/claimed_publisher")
for n in ["ok", "ok-bare", "ok-unsigned", "bad-publisher", "header-only", "long-publisher-max-sequence",
          "truncated", "empty"]:
    shutil.copy("wire/fuzz/corpus/envelope_decode/" + n, os.path.join(d, n))
e = open("wire/fuzz/corpus/envelope_decode/ok-bare", "rb").read()
write(d, "wrong-kind", e[:5] + b"\x01" + e[6:])
write(d, "wrong-version", e[:4] + b"\x02" + e[5:])
write(d, "id-past-end", e[:8 + e[7] - 1])

# key_delivery_open: the sealed delivery of docs/vectors/wire/key-delivery.txt and broken copies.
d = reset("wire/fuzz/corpus/key_delivery_open")
s = payload("key-delivery.txt")
write(d, "valid", s)
write(d, "flipped-tag", s[:-1] + bytes([s[-1] ^ 1]))
write(d, "flipped-ephemeral", bytes([s[0] ^ 1]) + s[1:])
write(d, "truncated", s[:-1])
write(d, "overhead-only", s[:32] + s[-16:])
write(d, "low-order-ephemeral", bytes(32) + s[32:])
write(d, "short", s[:47])
write(d, "empty", b"")

# capsule_peek_policy: capsule_decode's corpus (written by abe/tests/decoders.rs).
d = reset("abe/fuzz/corpus/capsule_peek_policy")
src = "abe/fuzz/corpus/capsule_decode"
for n in sorted(os.listdir(src)):
    shutil.copy(os.path.join(src, n), os.path.join(d, n))
