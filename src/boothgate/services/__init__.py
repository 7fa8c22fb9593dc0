"""Services: the spine (ingest pipeline), slots, statistics, retention. No FastAPI imports here."""
