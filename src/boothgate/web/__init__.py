"""The web layer: thin FastAPI routers, templates and static files over `runtime.py` and the packages
below it. Routers parse, call a service and shape the response; no logic of their own.
"""
