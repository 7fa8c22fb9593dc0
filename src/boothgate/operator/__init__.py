"""The operator's tools: slots, the settings view, provider credentials, model lists.

May import `run/`, `records/`, `providers/`, `storage/`, `imaging/`, `local/` and the base modules.
"""
