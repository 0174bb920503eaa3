"""Reading and writing small secret files (identity seeds, mesh keys) with care.

A secret file is text: comment lines start with ``#``; every other non-blank line holds
one 32-byte secret as 64 hexadecimal digits. Files are created with mode 0600 and
written atomically; a file that group or others may read or write is refused, as
OpenSSH refuses a private key with open permissions.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ._errors import KeyFileError

__all__ = ["SECRET_SIZE", "read_secrets", "write_secrets"]

#: Every secret meshedge stores (Ed25519 seed, ChaCha20-Poly1305 key) is 32 bytes.
SECRET_SIZE = 32
#: A secret file holds a handful of lines; anything much larger is not one of ours.
_MAX_FILE_SIZE = 64 * 1024


def read_secrets(path: str | os.PathLike[str], *, what: str) -> list[bytes]:
    """Read the 32-byte secrets of a secret file, in file order.

    Raises:
        KeyFileError: the file is missing, unreadable, readable or writable by group or
            others, malformed, or holds no secret.
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise KeyFileError(f"{what} file {p} does not exist") from None
    except OSError as exc:
        raise KeyFileError(f"cannot open {what} file {p}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"{what} file {p} is not a regular file")
        if info.st_mode & 0o077:
            raise KeyFileError(
                f"{what} file {p} has mode {stat.S_IMODE(info.st_mode):04o}: it must be "
                f"readable by its owner only (chmod 600 {p})"
            )
        if info.st_size > _MAX_FILE_SIZE:
            raise KeyFileError(f"{what} file {p} is too large to be a key file")
        raw = os.read(fd, _MAX_FILE_SIZE + 1)
    finally:
        os.close(fd)
    secrets: list[bytes] = []
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise KeyFileError(f"{what} file {p} is not a text key file") from None
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            secret = bytes.fromhex(line)
        except ValueError:
            secret = b""
        if len(secret) != SECRET_SIZE:
            raise KeyFileError(
                f"{what} file {p}, line {number}: expected {2 * SECRET_SIZE} hex digits"
            )
        secrets.append(secret)
    if not secrets:
        raise KeyFileError(f"{what} file {p} holds no key")
    return secrets


def write_secrets(
    path: str | os.PathLike[str],
    secrets: Sequence[bytes],
    *,
    what: str,
    overwrite: bool = False,
) -> None:
    """Write secrets to ``path`` with mode 0600, atomically.

    Raises:
        KeyFileError: ``path`` exists and ``overwrite`` is false, or it cannot be written.
    """
    p = Path(path)
    if not overwrite and (p.exists() or p.is_symlink()):
        raise KeyFileError(f"{what} file {p} exists; pass overwrite=True to replace it")
    body = f"# meshedge {what}: keep this file secret\n" + "".join(s.hex() + "\n" for s in secrets)
    directory = p.parent if str(p.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=directory)
    except OSError as exc:
        raise KeyFileError(f"cannot write {what} file {p}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, body.encode("ascii"))
        os.fsync(fd)
        os.close(fd)
        fd = -1
        if overwrite:
            os.replace(tmp, p)
        else:
            # link() fails if the name appeared meanwhile: never clobber without consent.
            os.link(tmp, p)
            os.unlink(tmp)
    except FileExistsError:
        os.unlink(tmp)
        raise KeyFileError(f"{what} file {p} exists; pass overwrite=True to replace it") from None
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise KeyFileError(f"cannot write {what} file {p}: {exc.strerror}") from None
