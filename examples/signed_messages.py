"""Signed messages: a device signs a sensor reading, a gateway verifies it.

What it shows, with meshedge's public API only:

1. a device (an Ed25519 identity) signs a sensor reading for the mesh "greenhouse";
2. the gateway verifies it (signature, mesh, trust policy, replay window) and prints it;
3. a copy changed on the way ("closed" becomes "opened") is refused: bad signature;
4. the same message sent again is refused: replayed;
5. a message from a device of another mesh is refused: wrong mesh;
6. a device that is not on the gateway's allowlist is refused: untrusted.

Every refusal is a ``RemoteProtocolError`` whose ``reason`` says why, so a node can
count drops by reason and carry on. Nothing is sent on any network.

Run it with ``.venv/bin/python examples/signed_messages.py`` (``make demo`` or ``make test``
create ``.venv`` on first use; ``tests/test_examples.py`` runs it too).
"""

from __future__ import annotations

from meshedge import DropReason, Identity, RemoteProtocolError, TrustPolicy
from meshedge.wire import ReplayWindow, SignedMessage, Signer, verify_message

MESH = "greenhouse"


def main() -> int:
    device = Identity.generate()
    neighbour = Identity.generate()  # a device the gateway knows, of the mesh "barn"
    print(f"device {device.node_id.short}… (node id {device.node_id})")

    # The gateway accepts messages of its mesh, from the devices it knows, once each.
    trust = TrustPolicy.allow([device.node_id, neighbour.node_id])
    replay = ReplayWindow()

    def gateway_receives(data: bytes) -> SignedMessage | DropReason:
        try:
            return verify_message(data, mesh=MESH, trust=trust, replay=replay)
        except RemoteProtocolError as refusal:
            return refusal.reason

    reading = {"sensor": "greenhouse-3", "celsius": 21.5, "humidity": 0.43, "door": "closed"}
    # A Signer numbers the device's messages 0, 1, 2, ...; receivers accept each
    # number once (step 4).
    data = Signer(device, mesh=MESH).sign(reading)
    print(f"\n1. the device signs a reading: {len(data)} bytes on the wire")

    outcomes: dict[str, SignedMessage | DropReason] = {}

    received = gateway_receives(data)
    outcomes["genuine"] = received
    if isinstance(received, SignedMessage):
        print(
            f"2. the gateway accepts it from {received.sender.short}… "
            f"(epoch {received.epoch}, seq {received.seq}): {received.payload}"
        )

    tampered = data.replace(b"closed", b"opened")
    outcomes["tampered"] = gateway_receives(tampered)
    print(f"3. a copy with the door 'opened' is refused: {outcomes['tampered']}")

    outcomes["replayed"] = gateway_receives(data)
    print(f"4. the same message again is refused: {outcomes['replayed']}")

    other_mesh = Signer(neighbour, mesh="barn").sign({"sensor": "barn-1", "celsius": 9.0})
    outcomes["other mesh"] = gateway_receives(other_mesh)
    print(f"5. a reading signed for the mesh 'barn' is refused: {outcomes['other mesh']}")

    stranger = Identity.generate()
    unknown = Signer(stranger, mesh=MESH).sign({"sensor": "greenhouse-3", "celsius": 99.0})
    outcomes["stranger"] = gateway_receives(unknown)
    print(f"6. a reading from a device not on the allowlist is refused: {outcomes['stranger']}")

    expected = {
        "tampered": DropReason.BAD_SIGNATURE,
        "replayed": DropReason.REPLAYED,
        "other mesh": DropReason.WRONG_MESH,
        "stranger": DropReason.UNTRUSTED,
    }
    genuine = outcomes["genuine"]
    ok = isinstance(genuine, SignedMessage) and genuine.payload == reading
    ok = ok and all(outcomes[name] is reason for name, reason in expected.items())
    print("\nall as expected" if ok else "\nUNEXPECTED OUTCOME")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
