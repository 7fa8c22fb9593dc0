"""The guest's copy (issue 30): share tokens, what the guest's page `/p/<token>` shows and deletes, the
galleries `/g/<token>`, and whether the public address is one a guest's phone can reach.

The QR pixels are `imaging/qrmark.py` (they run on the image workers); the late AI result is
`booth/late.py` (it runs a provider); the routes are `web/share.py`.

May import: `records/`, `storage/`, `imaging/` and the base modules. Nothing above (no booth, run,
operator, work or web).
"""
