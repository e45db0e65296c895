"""Where a store keeps its snapshot files: a directory on disk, or a dict for the simulator.

A snapshot moves between stores as files (an SST built by the sender, the same bytes written
chunk by chunk on the receiver), never as one object in memory. Both engines offer the same
small ``FileStore`` so the peer and store code that builds, streams, receives and ingests
snapshots is one code path whatever the engine (see ``Engine.files``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Protocol


class FileSink(Protocol):
    def write(self, data: bytes) -> None: ...

    def close(self) -> None:
        """Make the file durable (fsync) and close it."""
        ...


class FileStore(Protocol):
    """Flat namespace of files (a name is a file or, for checkpoints, a directory)."""

    def create(self, name: str) -> FileSink:
        """A new, empty file (an existing one of that name is replaced)."""
        ...

    def chunks(self, name: str, size: int) -> Iterator[bytes]:
        """The file's bytes, ``size`` at a time (only one chunk in memory at once)."""
        ...

    def size(self, name: str) -> int: ...

    def exists(self, name: str) -> bool: ...

    def remove(self, name: str) -> None:
        """Delete the file or directory; a missing one is fine (start-up garbage collection and a
        failed send may both try)."""
        ...

    def names(self) -> list[str]: ...


class DirFiles:
    """Files in one directory on disk (``<data>/snap`` of a store)."""

    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, exist_ok=True)

    def path(self, name: str) -> str:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"bad snapshot file name {name!r}")
        return os.path.join(self.root, name)

    def create(self, name: str) -> _DirSink:
        return _DirSink(self.path(name))

    def chunks(self, name: str, size: int) -> Iterator[bytes]:
        with open(self.path(name), "rb") as f:
            while chunk := f.read(size):
                yield chunk

    def size(self, name: str) -> int:
        return os.path.getsize(self.path(name))

    def exists(self, name: str) -> bool:
        return os.path.exists(self.path(name))

    def remove(self, name: str) -> None:
        path = self.path(name)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def names(self) -> list[str]:
        return sorted(os.listdir(self.root))


class _DirSink:
    def __init__(self, path: str) -> None:
        self._f = open(path, "wb")  # noqa: SIM115 (closed by close(), after the fsync)

    def write(self, data: bytes) -> None:
        self._f.write(data)

    def close(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()


class MemFiles:
    """Files as bytes in a dict: the simulator's disk. Files survive ``MemEngine.crash`` (every
    file is complete and synced once ``close`` returns; one still being written is dropped)."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}

    def create(self, name: str) -> _MemSink:
        self._files.pop(name, None)
        return _MemSink(self._files, name)

    def chunks(self, name: str, size: int) -> Iterator[bytes]:
        data = self._files[name]
        for pos in range(0, len(data), size):
            yield data[pos : pos + size]

    def size(self, name: str) -> int:
        return len(self._files[name])

    def exists(self, name: str) -> bool:
        return name in self._files

    def remove(self, name: str) -> None:
        self._files.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._files)


class _MemSink:
    def __init__(self, files: dict[str, bytes], name: str) -> None:
        self._files = files
        self._name = name
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self._parts.append(data)

    def close(self) -> None:
        self._files[self._name] = b"".join(self._parts)
        self._parts = []
