"""Node identity: an Ed25519 key pair whose public key *is* the node id."""

from __future__ import annotations

import base64
import binascii
import os
import time
from typing import Final

import nacl.bindings
import nacl.signing

from ._errors import KeyFileError, LocalProtocolError
from ._secret_file import SECRET_SIZE, read_secrets, write_secrets

__all__ = ["Identity", "NodeId"]

#: Length of ``str(node_id)``: 32 bytes in base32 without padding.
_TEXT_LENGTH: Final = 52
#: Characters of ``node_id.short``: 40 bits, enough to tell apart the nodes a human sees.
_SHORT_LENGTH: Final = 8


class NodeId(bytes):
    """The id of a node: its 32-byte Ed25519 public key.

    A ``bytes`` subclass, so it hashes, compares and orders as fast as bytes and can be
    a dict key. ``bytes(node_id)`` is the key; ``str(node_id)`` is a stable text form
    (lowercase base32, no padding, 52 characters) that :meth:`parse` reads back;
    ``short`` is a prefix for humans.
    """

    __slots__ = ()

    def __new__(cls, key: bytes) -> NodeId:
        """Wrap a 32-byte public key; raises ``LocalProtocolError`` for anything else."""
        if not isinstance(key, bytes) or len(key) != nacl.bindings.crypto_sign_PUBLICKEYBYTES:
            raise LocalProtocolError("a NodeId is exactly 32 bytes (an Ed25519 public key)")
        return super().__new__(cls, key)

    @classmethod
    def parse(cls, text: str) -> NodeId:
        """Read the text form produced by ``str(node_id)``.

        Raises:
            LocalProtocolError: ``text`` is not a node id.
        """
        if not isinstance(text, str) or len(text) != _TEXT_LENGTH:
            raise LocalProtocolError(f"not a node id: {text!r} (expected 52 base32 characters)")
        try:
            key = base64.b32decode(text.upper() + "====")
        except (binascii.Error, ValueError):
            raise LocalProtocolError(f"not a node id: {text!r} (not base32)") from None
        if cls._text(key) != text.lower() or text != text.lower():
            raise LocalProtocolError(f"not a node id: {text!r} (non-canonical)")
        return cls(key)

    @staticmethod
    def _text(key: bytes) -> str:
        return base64.b32encode(key).decode("ascii").rstrip("=").lower()

    @property
    def short(self) -> str:
        """A short prefix of the text form, for logs and humans (not unique by design)."""
        return self._text(self)[:_SHORT_LENGTH]

    def __str__(self) -> str:
        return self._text(self)

    def __repr__(self) -> str:
        return f"NodeId('{self}')"


_last_epoch = 0


def _next_epoch() -> int:
    """A boot epoch larger than any this process handed out before: wall-clock ms."""
    global _last_epoch
    _last_epoch = max(time.time_ns() // 1_000_000, _last_epoch + 1)
    return _last_epoch


class Identity:
    """A node's Ed25519 key pair, plus the boot epoch of its messages.

    The epoch is fixed when the object is made (wall-clock milliseconds by default), so a
    node that restarts with the same key signs with a larger epoch than before. The
    sequence numbers within an epoch are counted by whoever signs
    (:class:`meshedge.wire._message.Signer`), not by the key.
    """

    __slots__ = ("_seed", "_signing_key", "node_id", "epoch")

    def __init__(self, seed: bytes, *, epoch: int | None = None) -> None:
        if not isinstance(seed, bytes) or len(seed) != SECRET_SIZE:
            raise LocalProtocolError("an identity seed is exactly 32 bytes")
        if epoch is not None and not 0 <= epoch < 2**64:
            raise LocalProtocolError("epoch must be an unsigned 64-bit integer")
        self._seed = seed
        self._signing_key = nacl.signing.SigningKey(seed)
        #: This node's id (its public key).
        self.node_id = NodeId(bytes(self._signing_key.verify_key))
        #: The boot epoch carried by every message this object signs.
        self.epoch: int = _next_epoch() if epoch is None else epoch

    @classmethod
    def generate(cls, *, epoch: int | None = None) -> Identity:
        """A new random identity."""
        return cls(os.urandom(SECRET_SIZE), epoch=epoch)

    @classmethod
    def from_seed(cls, seed: bytes, *, epoch: int | None = None) -> Identity:
        """The identity derived from a 32-byte seed (the same seed gives the same id)."""
        return cls(seed, epoch=epoch)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Identity:
        """Load an identity file written by :meth:`save`.

        Raises:
            KeyFileError: missing, malformed, or readable by group or others.
        """
        seeds = read_secrets(path, what="identity")
        if len(seeds) != 1:
            raise KeyFileError(f"identity file {path} must hold exactly one seed")
        return cls(seeds[0])

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str]) -> Identity:
        """Load the identity at ``path``, creating the file (mode 0600) if there is none."""
        try:
            return cls.load(path)
        except KeyFileError:
            if os.path.lexists(path):
                raise
        identity = cls.generate()
        identity.save(path)
        return identity

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the seed to ``path`` with mode 0600, atomically.

        Raises:
            KeyFileError: the file exists and ``overwrite`` is false, or it cannot be written.
        """
        write_secrets(path, [self._seed], what="identity", overwrite=overwrite)

    @property
    def seed(self) -> bytes:
        """The 32-byte secret seed. Treat it like the private key it is."""
        return self._seed

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        return self._signing_key.sign(data).signature

    def __repr__(self) -> str:
        return f"Identity({self.node_id.short}…, epoch={self.epoch})"
