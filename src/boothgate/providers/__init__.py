"""Providers: one module family per AI service, the shared contract (`base`), the registry and the
transport every call goes through.

May import `imaging/`, `local/` and the base modules; never the booth, the run or the records.
"""
