"""Faults, crashes, full disks, troubled databases and strangers across the whole server (docs/reliability.md)."""
