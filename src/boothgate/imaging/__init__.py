"""Pixels and the worker processes that touch them: decode, check, shape, mask, the NSFW model, the image-worker pool.

May import: `local/` and the base modules (settings, errors, deadline, redaction, i18n). Nothing above.
"""
