"""`pip install` for the Makefile, without the one red block a green install always printed (issue 22).

mediapipe 0.10.21 is installed with `--no-deps` (see the Makefile's `local-engine`): it declares jax,
jaxlib, matplotlib, sentencepiece and sounddevice, which the offline engine never imports. Every later
`pip install` then ends with pip's "ERROR: pip's dependency resolver does not currently take into
account ..." block listing exactly those missing packages, although nothing is wrong. This wrapper runs
pip unchanged and leaves out only those known lines; any other conflict (a wrong version, a missing
package of anything else, mediapipe's included) is printed with pip's header as usual, and pip's exit
code is returned as is.

    python scripts/pip_install.py [pip install arguments...]
"""

from __future__ import annotations

import re
import subprocess
import sys

# What mediapipe 0.10.21 declares and the offline engine does not use (pyproject.toml lists what it does).
UNUSED_BY_THE_ENGINE = frozenset({"jax", "jaxlib", "matplotlib", "sentencepiece", "sounddevice"})
HEADER = "ERROR: pip's dependency resolver does not currently take into account all the packages"
KNOWN = re.compile(r"^mediapipe \S+ requires (?P<name>[A-Za-z0-9_.\-]+)(\[[^\]]*\])?[^,]*, which is not installed\.$")


def known_noise(line: str) -> bool:
    match = KNOWN.match(line.strip())
    return bool(match) and match.group("name").lower() in UNUSED_BY_THE_ENGINE


def clean(stderr: str) -> str:
    """pip's error output without the expected block: the header goes only when nothing else follows it."""
    lines = stderr.splitlines(keepends=True)
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.startswith(HEADER):
            out.append(line)
            index += 1
            continue
        block = [line]
        index += 1
        while index < len(lines) and not lines[index].startswith(("ERROR:", "WARNING:", "[notice]")):
            block.append(lines[index])
            index += 1
        rest = [entry for entry in block[1:] if entry.strip() and not known_noise(entry)]
        if rest:  # a real conflict: show it with pip's own header
            out += [block[0], *rest]
    return "".join(out)


def main(argv: list[str]) -> int:
    done = subprocess.run([sys.executable, "-m", "pip", "install", *argv], stderr=subprocess.PIPE, text=True)
    sys.stderr.write(clean(done.stderr))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
