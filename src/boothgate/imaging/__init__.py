"""Pixels and the worker processes that touch them: decode, checks, shaping, masks, the NSFW model
and the image-worker pool.

May import `local/` and the base modules.
"""
