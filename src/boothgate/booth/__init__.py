"""The booth's request from its first byte to its answer: the spine (`spine.py`) and the steps it names.

Receiving (multipart, turns, early decode, strangers, throttle, capacity), admission, the guest's copy and
the late result, and failing well live here; what happens to an admitted photo is `run/`. May import
`operator/`, `run/`, `sharing/`, `work/`, `records/`, `providers/`, `storage/`, `imaging/`, `local/` and the
base modules; never `web/`, `cli/` or `runtime.py`.
"""
