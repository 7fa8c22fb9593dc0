"""Pixels and worker processes: checks, preparation, limits (src/boothgate/imaging/)."""
