"""Module-level work for the image-worker tests: a worker process imports this module by name, like any
function handed to `ImageWorkers.run` (the contract: module-level functions, picklable arguments)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from boothgate.errors import TooLarge


def hang(pid_file: str) -> None:
    """Say which process runs this, then never finish (like a decoder stuck on a hostile image)."""
    Path(pid_file).write_text(str(os.getpid()))
    while True:
        time.sleep(0.05)


def append(path: str, name: str) -> int:
    with Path(path).open("a") as fh:
        fh.write(name + "\n")
    return os.getpid()


def wait_for(flag: str, pid_file: str) -> int:
    """Hold the worker until `flag` exists (the test decides when it may go on)."""
    Path(pid_file).write_text(str(os.getpid()))
    while not Path(flag).exists():
        time.sleep(0.01)
    return os.getpid()


def refuse() -> None:
    raise TooLarge("too many pixels for this test", code="image_too_large")


def crash() -> None:
    os._exit(3)  # a decoder that takes its process down


def allocate(megabytes: int) -> int:
    """Take `megabytes` of memory for real (every page written), 8 MB at a time, and give it back."""
    blocks = []
    for _ in range(0, megabytes, 8):
        block = bytearray(8 << 20)
        block[::4096] = b"\1" * len(block[::4096])
        blocks.append(block)
    return sum(len(b) for b in blocks) >> 20
