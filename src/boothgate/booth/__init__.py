"""The booth's request from its first byte to its answer: the spine (`spine.py`) and the steps it names.

May import: `operator/`, `run/`, `sharing/`, `work/`, `records/`, `providers/`, `imaging/`, `storage/`, `local/`
and the base modules. Never `web/`, `cli/` or `runtime.py`.
"""
