"""Running boothgate on a machine: the start banner, admin password reset, the systemd unit.

May import `operator/`, `storage/` and the base modules.
"""
