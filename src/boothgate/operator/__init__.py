"""The operator's tools: slots, the settings view, provider credentials, model lists, configuration files.

May import: `run/`, `records/`, `providers/`, `imaging/`, `storage/`, `local/` and the base modules. Nothing above.
"""
