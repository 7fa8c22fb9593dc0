"""The client API's work: jobs (`jobs.py`; their stages and public view `live.py`, the key's history
`history.py`), batches (`batches.py`), outgoing webhooks (`webhooks.py`).

An API job is an ordinary job: it goes through the booth's spine (`booth/spine.py`, source "api") like a
rehearsal does, without an HTTP booth request — its upload is read first (bounded like a booth's), then
replayed to the spine as the booth's multipart body (`feed.py`). Keys and their limits are the operator's
(`operator/api_keys.py`); the routes are in `web/v1.py` and `web/keys_api.py`.

Same floor as `booth/`: may import `booth/` (the spine), `work/` and everything below it; never `web/`,
`cli/` or `runtime.py`.
"""
