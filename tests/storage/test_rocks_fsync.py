"""``RocksEngine.write(sync=True)`` really fsyncs the WAL, and ``sync=False`` really does not.

Reopening a database cannot tell (an unsynced write survives a clean close and even a kill -9,
through the page cache), so this watches the system calls instead: a child process writes through
``RocksEngine`` with a small LD_PRELOAD library, compiled here with the C compiler, that reports
every ``fsync``/``fdatasync`` and the file it was called on, between markers the child prints.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

static void report(const char *call, int fd) {
    char link[64], path[PATH_MAX], line[PATH_MAX + 64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    path[n < 0 ? 0 : n] = 0;
    int len = snprintf(line, sizeof line, "SYNC %s %s\n", call, path);
    if (write(2, line, len) < 0) { /* nothing to do: the test then sees no call */ }
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    report("fsync", fd);
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    report("fdatasync", fd);
    return real(fd);
}
"""

CHILD = r"""
import os, sys
from kvdb.storage import CF_DEFAULT, RocksEngine

def mark(name):
    os.write(2, f"MARK {name}\n".encode())

engine = RocksEngine(sys.argv[1])
for sync in (False, True):
    mark(f"sync={sync}")
    for i in range(20):
        batch = engine.batch()
        batch.put(CF_DEFAULT, b"k%d" % i, b"v" * 100)
        engine.write(batch, sync=sync)
mark("close")
engine.close()
"""


def _compile_shim(tmp_path: Path) -> Path:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (gcc or cc) to build the fsync-reporting LD_PRELOAD library")
    source, lib = tmp_path / "syncshim.c", tmp_path / "syncshim.so"
    source.write_text(SHIM)
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(lib), str(source), "-ldl"], check=True)
    return lib


def _syncs_by_phase(stderr: str) -> dict[str, list[str]]:
    phases: dict[str, list[str]] = {"open": []}
    phase = "open"
    for line in stderr.splitlines():
        if line.startswith("MARK "):
            phase = line[5:]
            phases[phase] = []
        elif line.startswith("SYNC "):
            phases[phase].append(line[5:])
    return phases


def test_synced_write_fsyncs_the_wal_and_unsynced_write_does_not(tmp_path: Path) -> None:
    lib = _compile_shim(tmp_path)
    env = dict(os.environ, LD_PRELOAD=str(lib))
    child = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "db")], env=env, capture_output=True,
                           text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    phases = _syncs_by_phase(child.stderr)
    assert phases["open"], "the shim saw no fsync at all while RocksDB opened: is it loaded?"
    assert phases["sync=False"] == [], phases["sync=False"]
    wal_syncs = [s for s in phases["sync=True"] if s.endswith(".log")]
    assert len(wal_syncs) >= 20, phases["sync=True"]  # every synced write, on the WAL
