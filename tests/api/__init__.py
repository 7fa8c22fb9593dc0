"""The client API: keys, jobs with progress, batches and signed webhooks."""
