"""Mesh keys: symmetric keys that encrypt every datagram and frame of a mesh.

The primary key encrypts; every key in the ring decrypts, so a running mesh rotates
keys without downtime: ``add`` the new key everywhere, ``use`` it everywhere, then
``remove`` the old one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from .._errors import DropReason, LocalProtocolError, RemoteProtocolError
from .._secret_file import SECRET_SIZE, read_secrets, write_secrets
from .cose import NONCE_SIZE, CoseError, decrypt0, encrypt0

__all__ = ["Keyring"]


class Keyring:
    """An ordered set of 32-byte ChaCha20/Poly1305 keys; the first is the primary.

    Args:
        keys: the keys, primary first. At least one.
        nonce_source: returns ``n`` fresh random bytes (``os.urandom`` by default); the
            simulator passes a seeded one for determinism.
    """

    __slots__ = ("_keys", "_nonce_source")

    def __init__(
        self,
        keys: Iterable[bytes],
        *,
        nonce_source: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._keys: list[bytes] = []
        self._nonce_source = nonce_source
        for key in keys:
            self.add(key)
        if not self._keys:
            raise LocalProtocolError("a keyring needs at least one key")

    @staticmethod
    def generate_key() -> bytes:
        """A new random 32-byte mesh key."""
        return os.urandom(SECRET_SIZE)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Keyring:
        """Read a key file (one hex key per line, primary first; mode 0600).

        Raises:
            KeyFileError: missing, malformed, or readable by group or others.
        """
        return cls(read_secrets(path, what="mesh key"))

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the ring to a key file with mode 0600, primary first."""
        write_secrets(path, self._keys, what="mesh key", overwrite=overwrite)

    @property
    def primary(self) -> bytes:
        """The key that encrypts."""
        return self._keys[0]

    @property
    def keys(self) -> tuple[bytes, ...]:
        """All keys, primary first."""
        return tuple(self._keys)

    def add(self, key: bytes) -> None:
        """Add a key that decrypts (it does not become primary).

        Raises:
            LocalProtocolError: not 32 bytes.
        """
        if not isinstance(key, bytes) or len(key) != SECRET_SIZE:
            raise LocalProtocolError("a mesh key is exactly 32 bytes")
        if key not in self._keys:
            self._keys.append(key)

    def use(self, key: bytes) -> None:
        """Make a key of the ring the primary.

        Raises:
            LocalProtocolError: the key is not in the ring.
        """
        if key not in self._keys:
            raise LocalProtocolError("add a key to the ring before using it")
        self._keys.remove(key)
        self._keys.insert(0, key)

    def remove(self, key: bytes) -> None:
        """Remove a key; the primary cannot be removed (``use`` another first).

        Raises:
            LocalProtocolError: the key is the primary or not in the ring.
        """
        if key not in self._keys:
            raise LocalProtocolError("that key is not in the ring")
        if key == self._keys[0]:
            raise LocalProtocolError("cannot remove the primary key; use() another first")
        self._keys.remove(key)

    def encrypt(self, plaintext: bytes, *, external_aad: bytes = b"") -> bytes:
        """A COSE_Encrypt0 of ``plaintext`` under the primary key and a fresh random nonce."""
        return encrypt0(
            self._keys[0],
            plaintext,
            nonce=self._nonce_source(NONCE_SIZE),
            external_aad=external_aad,
        )

    def decrypt(self, item: bytes | Any, *, external_aad: bytes = b"") -> bytes:
        """Decrypt with whichever key of the ring fits (primary tried first).

        Raises:
            RemoteProtocolError: ``decrypt_failed`` if no key fits or it is malformed.
        """
        for key in self._keys:
            try:
                return decrypt0(item, key, external_aad)
            except CoseError:
                continue
        raise RemoteProtocolError(DropReason.DECRYPT_FAILED, "no key of the ring decrypts it")

    def __repr__(self) -> str:
        return f"Keyring(<{len(self._keys)} keys>)"
