"""The demo's job: a Mandelbrot image computed in tiles, whose cost varies tile by tile.

Worker nodes load this registry with ``meshedge run --tasks
meshedge.cli.demo_tasks:registry``. Tiles near the set's boundary iterate far longer
than tiles outside it, so an even split would leave nodes idle: work stealing evens it.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from typing import Any

from ..runtime._tasks import TaskRegistry

__all__ = ["HEIGHT", "MAX_ITERATIONS", "TILE_ROWS", "WIDTH", "registry", "render_tile", "write_png"]

#: Image size in pixels and rows per tile (one task per tile).
WIDTH, HEIGHT, TILE_ROWS = 480, 360, 6
#: Iterations before a point counts as inside the set.
MAX_ITERATIONS = 384

#: The demo's task registry.
registry = TaskRegistry()


@registry.task(name="demo.mandelbrot_tile", kind="thread")
def render_tile(first_row: int, rows: int) -> dict[str, Any]:
    """Escape counts of ``rows`` image rows from ``first_row``, plus who did it and how long."""
    started = time.thread_time()
    counts = bytearray()
    for y in range(first_row, first_row + rows):
        ci = (y / HEIGHT) * 2.4 - 1.2
        for x in range(WIDTH):
            cr = (x / WIDTH) * 3.2 - 2.2
            zr = zi = 0.0
            n = 0
            while n < MAX_ITERATIONS and zr * zr + zi * zi <= 4.0:
                zr, zi = zr * zr - zi * zi + cr, 2.0 * zr * zi + ci
                n += 1
            counts.append(255 if n == MAX_ITERATIONS else (n * 255 // MAX_ITERATIONS))
    return {
        "row": first_row,
        "pixels": bytes(counts),
        "pid": os.getpid(),
        "seconds": time.thread_time() - started,
    }


def write_png(path: str, width: int, height: int, gray: bytes) -> None:
    """Write an 8-bit grayscale PNG with the standard library only."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + gray[y * width : (y + 1) * width] for y in range(height))
    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9))
    png += chunk(b"IEND", b"")
    with open(path, "wb") as file:
        file.write(png)
