"""What is kept: job rows, statistics, the live view, restarts, PostgreSQL (src/boothgate/records/, storage/)."""
