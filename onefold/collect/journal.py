"""The intake journal: append-only segment files that make an acknowledgement durable in one fsync.

Each record is framed as ``length (4 bytes) | crc32 (4 bytes) | payload``; the top bit of the length marks the
last record of a group. A group of records is written with one ``write`` and one ``fdatasync``; only then is
the group acknowledged. A crash can leave a torn group at the tail of the newest segment, which was never
acknowledged: opening the journal truncates it whole, back to the end of the last whole group (a write killed
part way can leave whole records of a group on disk; keeping them would store part of a request that was never
acknowledged). Journals written before groups were marked carry no mark; there the last whole record is the
end. Anything else that fails to decode before the durable end is corruption, reported loudly and never
skipped.

Positions are ``(segment number, byte offset)`` pairs, ordered as tuples.
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
_GROUP_END = 0x8000_0000  # in the length field: this record ends its group
_LENGTH = 0x7FFF_FFFF
SEGMENT_BYTES = 64 * 1024 * 1024


class JournalCorrupt(StoreError):
    """A journal record before the durable end does not decode; loading stops rather than skip it."""

    code = "journal_corrupt"


def _segment_name(number: int) -> str:
    return f"{number:08d}.log"


def encode(payloads: list[bytes]) -> bytes:
    """A group of records, the last one marked as its end."""
    last = len(payloads) - 1
    return b"".join(
        _FRAME.pack(len(p) | (_GROUP_END if i == last else 0), zlib.crc32(p)) + p for i, p in enumerate(payloads)
    )


def decode(data: bytes) -> tuple[list[bytes], int]:
    """The whole records in ``data`` and how many bytes they span (a torn or bad tail is left out)."""
    records, offset, _ = _scan(data)
    return records, offset


def durable_length(data: bytes) -> int:
    """How many bytes of a segment's ``data`` hold whole groups: the end of the last marked record, or, in a
    segment written before groups were marked, of the last whole record."""
    _, offset, group_end = _scan(data)
    return group_end if group_end is not None else offset


def _scan(data: bytes) -> tuple[list[bytes], int, int | None]:
    """Whole records, the bytes they span, and the end of the last record that ends a group (None if none)."""
    records: list[bytes] = []
    offset, size, group_end = 0, len(data), None
    while offset + _FRAME.size <= size:
        marked, crc = _FRAME.unpack_from(data, offset)
        length = marked & _LENGTH
        end = offset + _FRAME.size + length
        if end > size:
            break
        payload = data[offset + _FRAME.size : end]
        if zlib.crc32(payload) != crc:
            break
        records.append(payload)
        offset = end
        if marked & _GROUP_END:
            group_end = end
    return records, offset, group_end


def bytes_between(start: Position, end: Position) -> int:
    """About how many journal bytes lie from ``start`` to ``end`` (segments counted at their full size)."""
    return (end[0] - start[0]) * SEGMENT_BYTES + end[1] - start[1] if end > start else 0


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """Append side (the writer thread) and read side (the loader thread) of the segment files."""

    def __init__(self, directory: Path, *, loaded: Position | None = None, segment_bytes: int = SEGMENT_BYTES) -> None:
        """Open the journal; ``loaded`` is the position the event log has loaded up to, if any."""
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._segment_bytes = segment_bytes
        self._broken: str | None = None
        numbers = self.segments()
        if numbers:
            self._number = numbers[-1]
        else:  # a new journal continues after whatever the event log already loaded
            self._number = loaded[0] + 1 if loaded else 1
        path = directory / _segment_name(self._number)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if not numbers:
            _fsync_dir(directory)
        self._size = self._truncate_torn_tail(path)
        self.end: Position = (self._number, self._size)
        if loaded is not None and loaded > self.end:
            os.close(self._fd)
            raise StoreError(
                f"the event log has loaded the journal up to {loaded}, but {directory} ends at {self.end}: "
                "journal files were replaced or restored from an older copy. Put the right journal back, or "
                "move the journal directory away to start a new one (unloaded events in it would be lost)"
            )

    def rescan(self) -> Position:
        """Find the durable end again after another process (the intake process) wrote and stopped: cut a torn
        tail it left and return the new end. Only while nobody else appends."""
        numbers = self.segments()
        if numbers and numbers[-1] != self._number:
            os.close(self._fd)
            self._number = numbers[-1]
            self._fd = os.open(self.directory / _segment_name(self._number), os.O_WRONLY | os.O_APPEND)
        self._size = self._truncate_torn_tail(self.directory / _segment_name(self._number))
        self.end = (self._number, self._size)
        return self.end

    def segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.directory.glob("*.log") if p.stem.isdigit())

    def _truncate_torn_tail(self, path: Path) -> int:
        data = path.read_bytes()
        valid = durable_length(data)
        if valid != len(data):
            os.truncate(path, valid)
            os.fsync(self._fd)
        return valid

    def append(self, payloads: list[bytes]) -> Position:
        """Write and sync a group of records; returns the new durable end.

        On failure the file is cut back to the last durable group, so a later append never lands behind
        garbage. If even that fails, the journal refuses every later append until the server restarts.
        """
        if self._broken:
            raise StoreError(self._broken)
        if self._size >= self._segment_bytes:
            self._rotate()
        data = encode(payloads)
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(f"short write: {written} of {len(data)} bytes")
            os.fdatasync(self._fd)
        except OSError as exc:
            self._roll_back(exc)
            raise StoreError(f"cannot write the intake journal in {self.directory}: {exc}; retry later") from exc
        self._size += len(data)
        self.end = (self._number, self._size)
        return self.end

    def _roll_back(self, cause: OSError) -> None:
        try:
            os.ftruncate(self._fd, self._size)
            os.fsync(self._fd)
        except OSError as exc:
            self._broken = (
                f"the intake journal in {self.directory} could not be repaired after a failed write ({cause}; "
                f"then {exc}); restart the server once the disk is healthy"
            )

    def _rotate(self) -> None:
        path = self.directory / _segment_name(self._number + 1)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        _fsync_dir(self.directory)  # make the new segment's name durable too
        os.close(self._fd)
        self._fd, self._number, self._size = fd, self._number + 1, 0

    def read(self, start: Position, end: Position, max_bytes: int) -> Iterator[tuple[list[bytes], Position]]:
        """Records between two positions, in chunks of about ``max_bytes``, each with the position after it."""
        number, offset = start
        while (number, offset) < end:
            path = self.directory / _segment_name(number)
            if not path.exists():
                raise JournalCorrupt(f"journal segment {path} is missing, but records up to {end} need it")
            stop = end[1] if number == end[0] else path.stat().st_size
            with path.open("rb") as handle:
                while offset < stop:
                    handle.seek(offset)
                    data = handle.read(min(max_bytes, stop - offset))
                    records, used = decode(data)
                    if not records and len(data) >= _FRAME.size:
                        length = _FRAME.unpack_from(data, 0)[0] & _LENGTH
                        if _FRAME.size + length > len(data):  # one record larger than the chunk
                            handle.seek(offset)
                            records, used = decode(handle.read(min(_FRAME.size + length, stop - offset)))
                    if not records:
                        raise JournalCorrupt(
                            f"journal segment {path} does not decode at byte {offset} (before its durable end "
                            f"{stop}); loading stopped so that nothing is skipped"
                        )
                    offset += used
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
