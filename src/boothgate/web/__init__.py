"""Web layer: thin FastAPI routers over the services."""
