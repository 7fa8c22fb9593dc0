"""The run of an admitted photo: fallback, moderation, offline detection, shaping (src/boothgate/run/)."""
