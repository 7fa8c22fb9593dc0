"""What happens to an admitted photo: the fallback chain, latency figures, the offline breaker, moderation, the shaping step.

May import: `records/`, `providers/`, `imaging/`, `storage/`, `local/` and the base modules. Nothing above.
"""
