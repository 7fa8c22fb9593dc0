"""What happens to an admitted photo: prompt placeholders, the fallback chain, latency, the offline
breaker, moderation and the shaping step.

May import `records/`, `providers/`, `storage/`, `imaging/`, `local/` and the base modules.
"""
