"""Wire-layer benchmark: signing and verification speed, and bytes on the wire.

Prints, in one run:

- raw Ed25519 verifications per second with PyNaCl (``VerifyKey.verify`` with a detached
  signature, and ``nacl.bindings.crypto_sign_open``) on a message as long as the bytes a
  meshedge signature covers; the faster of the two is "raw";
- ``sign_message`` and ``verify_message`` per second for a ~200-byte sensor reading, and
  the ratio verify_message / raw verify (goal >= 0.75);
- the bytes a signed message adds to its CBOR body, plain and encrypted (goals <= 110
  and <= 150), with a breakdown into COSE_Sign1 framing, envelope fields and encryption.

Each rate is the best of 3 timed runs of about 1.5 s each (time.perf_counter); the runs
of all figures are interleaved, so background load affects them alike.
Run it with ``.venv/bin/python benchmarks/wire.py``; it uses no network.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import cbor2
import nacl
import nacl.bindings
import nacl.signing

from meshedge import Identity, Keyring, TrustPolicy
from meshedge.wire import ReplayWindow, cose, seal_frame, sign_message, verify_message
from meshedge.wire._message import (
    FIELD_BODY,
    FIELD_EPOCH,
    FIELD_MESH,
    FIELD_SEQ,
    FIELD_TYPE,
    FIELD_VERSION,
)

MESH = "greenhouse"
SECONDS_PER_RUN = 1.5
RUNS = 3
RATIO_GOAL = 0.75
PLAIN_OVERHEAD_GOAL = 110
ENCRYPTED_OVERHEAD_GOAL = 150

#: A realistic reading from an environmental sensor: about 200 bytes of CBOR.
READING: dict[str, Any] = {
    "device": "greenhouse-3/sensor-12",
    "ts": 1_717_171_717_123,
    "celsius": 21.53,
    "humidity": 0.431,
    "pressure_hpa": 1013.2,
    "co2_ppm": 412,
    "battery_v": 3.71,
    "rssi_dbm": -67,
    "status": "ok",
    "samples": [21.49, 21.51, 21.53, 21.55, 21.52],
}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def timed_rate(run: Callable[[int], None], count: int) -> float:
    """Operations per second of one ``run(count)``, which does ``count`` operations."""
    start = time.perf_counter()
    run(count)
    return count / (time.perf_counter() - start)


def calibrated_count(run: Callable[[int], None]) -> int:
    """How many operations take about SECONDS_PER_RUN."""
    count = 200
    while True:
        start = time.perf_counter()
        run(count)
        elapsed = time.perf_counter() - start
        if elapsed > 0.2:
            return max(1, int(count * SECONDS_PER_RUN / elapsed))
        count *= 4


def best_rates(benchmarks: dict[str, tuple[Callable[[int], None], int]]) -> dict[str, float]:
    """Best of RUNS rates for each benchmark, interleaved round by round.

    Interleaving exposes every benchmark to the same background load, so that ratios
    between them stay meaningful on a busy machine.
    """
    best = dict.fromkeys(benchmarks, 0.0)
    for _ in range(RUNS):
        for name, (run, count) in benchmarks.items():
            best[name] = max(best[name], timed_rate(run, count))
    return best


def line(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<48} {value:>12}  {note}".rstrip())


def print_header(body: bytes, signed: bytes, to_be_signed: bytes) -> None:
    print("meshedge wire benchmark")
    print(
        f"  Python {platform.python_version()}, PyNaCl {nacl.__version__}, "
        f"cbor2 {importlib.metadata.version('cbor2')}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs; best of {RUNS} x ~{SECONDS_PER_RUN} s"
    )
    # Rates mean little on a busy machine: say how busy it was.
    print(f"  load average at start: {os.getloadavg()[0]:.2f}")
    print(
        f"  body {len(body)} B of CBOR; signed message {len(signed)} B; "
        f"Ed25519 signs {len(to_be_signed)} B (Sig_structure)"
    )


def raw_benchmarks(message_size: int) -> dict[str, Callable[[int], None]]:
    """PyNaCl's Ed25519 verification on a message of ``message_size`` bytes, two ways."""
    raw_message = os.urandom(message_size)
    signing_key = nacl.signing.SigningKey.generate()
    verify_key = signing_key.verify_key
    raw_public = bytes(verify_key)
    raw_signature = signing_key.sign(raw_message).signature
    signed_and_message = raw_signature + raw_message

    def raw_verify_key(count: int) -> None:
        verify = verify_key.verify
        for _ in range(count):
            verify(raw_message, raw_signature)

    def raw_sign_open(count: int) -> None:
        sign_open = nacl.bindings.crypto_sign_open
        for _ in range(count):
            sign_open(signed_and_message, raw_public)

    return {
        "raw Ed25519 verify: VerifyKey.verify": raw_verify_key,
        "raw Ed25519 verify: crypto_sign_open": raw_sign_open,
    }


def meshedge_benchmarks(
    identity: Identity, signed: bytes
) -> dict[str, tuple[Callable[[int], None], int]]:
    """sign_message and verify_message (without and with the replay window), calibrated."""
    trust = TrustPolicy.allow([identity.node_id])

    def sign(count: int) -> None:
        for seq in range(count):
            sign_message(identity, READING, mesh=MESH, seq=seq)

    def verify(count: int) -> None:
        for _ in range(count):
            verify_message(signed, mesh=MESH, trust=trust)

    # The full receive path also checks the replay window, so every message must be new.
    replay_count = calibrated_count(verify)
    distinct = [sign_message(identity, READING, mesh=MESH, seq=seq) for seq in range(replay_count)]

    def verify_with_replay(count: int) -> None:
        replay = ReplayWindow()
        for data in distinct[:count]:
            verify_message(data, mesh=MESH, trust=trust, replay=replay)

    runs = {"sign_message": sign, "verify_message (mesh + allowlist)": verify}
    benchmarks = {name: (run, calibrated_count(run)) for name, run in runs.items()}
    benchmarks["verify_message (mesh + allowlist + replay)"] = (verify_with_replay, replay_count)
    return benchmarks


def print_speed(identity: Identity, signed: bytes, to_be_signed: bytes) -> None:
    raw_runs = raw_benchmarks(len(to_be_signed))
    benchmarks = {name: (run, calibrated_count(run)) for name, run in raw_runs.items()}
    benchmarks.update(meshedge_benchmarks(identity, signed))
    rates = best_rates(benchmarks)
    raw = max(rates[name] for name in raw_runs)
    print("\nspeed")
    for name in raw_runs:
        line(name, f"{rates[name]:,.0f}/s")
    line("raw (the faster)", f"{raw:,.0f}/s")
    for name in list(benchmarks)[len(raw_runs) :]:
        line(name, f"{rates[name]:,.0f}/s")
    for label, name in (
        ("without", "verify_message (mesh + allowlist)"),
        ("with", "verify_message (mesh + allowlist + replay)"),
    ):
        ratio = rates[name] / raw
        line(
            f"verify_message / raw verify, {label} replay",
            f"{ratio:.2f}",
            f"goal >= {RATIO_GOAL}  {verdict(ratio >= RATIO_GOAL)}",
        )


def print_overhead(signed: bytes, encrypted: bytes, body: bytes) -> None:
    plain_overhead = len(signed) - len(body)
    encrypted_overhead = len(encrypted) - len(body)
    print("\nbytes added to a CBOR body")
    line(
        "signed (COSE_Sign1)",
        f"{plain_overhead} B",
        f"goal <= {PLAIN_OVERHEAD_GOAL}  {verdict(plain_overhead <= PLAIN_OVERHEAD_GOAL)}",
    )
    line(
        "signed and encrypted (with a Keyring)",
        f"{encrypted_overhead} B",
        f"goal <= {ENCRYPTED_OVERHEAD_GOAL}  "
        f"{verdict(encrypted_overhead <= ENCRYPTED_OVERHEAD_GOAL)}",
    )


def framing_parts(inner: bytes) -> dict[str, int]:
    """The bytes of COSE_Sign1 around the envelope."""
    return {
        "tag 18 + array(4)": 2,
        "protected header bstr {1: -8}": 1 + len(cose.EDDSA_PROTECTED),
        "unprotected {4: bstr(32)} header": 4,
        "kid: the 32-byte public key": 32,
        "payload bstr header": len(cbor2.dumps(inner)) - len(inner),
        "signature bstr header": 2,
        "Ed25519 signature": 64,
    }


def envelope_parts(inner: bytes) -> dict[str, int]:
    """The bytes of the envelope map around the body, field by field (from the map)."""
    envelope = cbor2.loads(inner)
    labels = {
        FIELD_MESH: f"mesh {MESH!r}",
        FIELD_EPOCH: "epoch (wall-clock ms)",
        FIELD_SEQ: "seq (0..23: 1 B; grows to 9 B)",
        FIELD_TYPE: "type",
        FIELD_VERSION: "protocol version",
    }
    fields = [key for key in envelope if key != FIELD_BODY]
    parts = {
        f"map header ({len(envelope)} entries)": len(cbor2.dumps({})),
        f"{len(envelope)} one-byte keys": sum(len(cbor2.dumps(key)) for key in envelope),
    }
    for key in fields:
        parts[labels.get(key, f"field {key}")] = len(cbor2.dumps(envelope[key]))
    return parts


def encryption_parts(signed: bytes) -> dict[str, int]:
    """The bytes COSE_Encrypt0 adds around a signed message."""
    iv = cbor2.dumps({cose.HEADER_IV: bytes(cose.NONCE_SIZE)})
    return {
        "tag 16 + array(3)": 2,
        "protected header bstr {1: 24}": 1 + len(cose.CHACHA20_POLY1305_PROTECTED),
        "unprotected {5: 12-byte IV}": len(iv),
        "ciphertext bstr header": len(cbor2.dumps(signed)) - len(signed),
        "Poly1305 tag": 16,
    }


def print_breakdown(signed: bytes, encrypted: bytes, inner: bytes, body: bytes) -> None:
    framing, envelope = framing_parts(inner), envelope_parts(inner)
    encryption = encryption_parts(signed)
    assert sum(framing.values()) == len(signed) - len(inner), "framing breakdown"
    assert sum(envelope.values()) == len(inner) - len(body), "envelope breakdown"
    assert sum(encryption.values()) == len(encrypted) - len(signed), "encryption breakdown"
    for title, parts in (
        ("COSE_Sign1 framing (108 B fixed + payload header)", framing),
        ("envelope fields", envelope),
        ("COSE_Encrypt0 (with a Keyring)", encryption),
    ):
        print(f"\n  {title}: {sum(parts.values())} B")
        for label, size in parts.items():
            line(f"  {label}", f"{size} B")


def main() -> None:
    identity = Identity.generate()
    public_key = bytes(identity.node_id)
    body = cbor2.dumps(READING)
    signed = sign_message(identity, READING, mesh=MESH, seq=0)
    inner = cose.verify_sign1(signed, public_key)  # the envelope map
    # What Ed25519 actually signs: the RFC 9052 Sig_structure around the payload.
    to_be_signed = cose.sig_structure(cose.EDDSA_PROTECTED, inner)
    print_header(body, signed, to_be_signed)
    print_speed(identity, signed, to_be_signed)
    encrypted = seal_frame(signed, keyring=Keyring([Keyring.generate_key()]))
    print_overhead(signed, encrypted, body)
    print_breakdown(signed, encrypted, inner, body)


if __name__ == "__main__":
    main()
