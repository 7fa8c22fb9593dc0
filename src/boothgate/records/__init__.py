"""What is kept of each photo: job rows, the journal, statistics, the live view's feed, trash,
retention, recovery and media links.

May import `providers/` (for the names of what ran), `storage/`, `imaging/`, `local/` and the base modules.
"""
