"""What is kept of each photo: job rows, the journal, statistics, the live view's feed, trash, retention, recovery, media links.

May import: `storage/`, `imaging/`, `local/` and the base modules. Nothing above (no booth, run, operator or web).
"""
