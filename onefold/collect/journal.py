"""The intake journal: append-only segment files that make an acknowledgement durable in one fsync.

Each record is framed as ``length (4 bytes) | crc32 (4 bytes) | payload``. A group of records is written with
one ``write`` and one ``fdatasync``; only then is the group acknowledged. A crash can leave a torn record at
the tail, which was never acknowledged: ``read`` stops at the first frame that is short or fails its CRC, and
``open`` truncates it away. Positions are ``(segment number, byte offset)`` pairs, ordered as tuples.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from onefold.errors import StoreError

Position = tuple[int, int]
_FRAME = struct.Struct("<II")
SEGMENT_BYTES = 64 * 1024 * 1024


def _segment_name(number: int) -> str:
    return f"{number:08d}.log"


def encode(payloads: list[bytes]) -> bytes:
    return b"".join(_FRAME.pack(len(p), zlib.crc32(p)) + p for p in payloads)


def decode(data: bytes) -> tuple[list[bytes], int]:
    """The whole records in ``data`` and how many bytes they span (a torn tail is left out)."""
    records: list[bytes] = []
    offset, size = 0, len(data)
    while offset + _FRAME.size <= size:
        length, crc = _FRAME.unpack_from(data, offset)
        end = offset + _FRAME.size + length
        if end > size:
            break
        payload = data[offset + _FRAME.size : end]
        if zlib.crc32(payload) != crc:
            break
        records.append(payload)
        offset = end
    return records, offset


class Journal:
    """Append side (the writer thread) and read side (the loader thread) of the segment files."""

    def __init__(self, directory: Path, *, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._segment_bytes = segment_bytes
        numbers = self.segments()
        self._number = numbers[-1] if numbers else 1
        path = directory / _segment_name(self._number)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = self._truncate_torn_tail(path)
        self.end: Position = (self._number, self._size)

    def segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.directory.glob("*.log") if p.stem.isdigit())

    def _truncate_torn_tail(self, path: Path) -> int:
        data = path.read_bytes()
        _, valid = decode(data)
        if valid != len(data):
            os.truncate(path, valid)
            os.fsync(self._fd)
        return valid

    def append(self, payloads: list[bytes]) -> Position:
        """Write and sync a group of records; returns the new durable end."""
        if self._size >= self._segment_bytes:
            self._rotate()
        data = encode(payloads)
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(f"short write: {written} of {len(data)} bytes")
            os.fdatasync(self._fd)
        except OSError as exc:
            raise StoreError(f"cannot write the intake journal in {self.directory}: {exc}") from exc
        self._size += len(data)
        self.end = (self._number, self._size)
        return self.end

    def _rotate(self) -> None:
        os.close(self._fd)
        self._number += 1
        self._fd = os.open(self.directory / _segment_name(self._number), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the new segment's name durable too
        finally:
            os.close(dir_fd)
        self._size = 0

    def read(self, start: Position, end: Position, max_bytes: int) -> Iterator[tuple[list[bytes], Position]]:
        """Records between two positions, in chunks of about ``max_bytes``, each with the position after it."""
        number, offset = start
        while (number, offset) < end:
            path = self.directory / _segment_name(number)
            limit = end[1] if number == end[0] else None
            if not path.exists():
                if number >= end[0]:
                    return
                number, offset = number + 1, 0
                continue
            with path.open("rb") as handle:
                handle.seek(offset)
                while limit is None or offset < limit:
                    want = max_bytes if limit is None else min(max_bytes, limit - offset)
                    data = handle.read(want)
                    records, used = decode(data)
                    if not records and len(data) >= _FRAME.size:
                        length = _FRAME.unpack_from(data, 0)[0]
                        if _FRAME.size + length > len(data):  # one record larger than the chunk
                            handle.seek(offset)
                            records, used = decode(handle.read(_FRAME.size + length))
                    if not records:
                        break
                    offset += used
                    handle.seek(offset)
                    yield records, (number, offset)
            if number >= end[0]:
                return
            number, offset = number + 1, 0

    def drop_before(self, position: Position) -> None:
        """Delete whole segments that lie before ``position`` (their records are safely loaded)."""
        for number in self.segments():
            if number < position[0] and number != self._number:
                (self.directory / _segment_name(number)).unlink(missing_ok=True)

    def close(self) -> None:
        os.close(self._fd)
