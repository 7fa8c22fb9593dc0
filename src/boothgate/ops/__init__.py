"""Running boothgate on a machine: the start banner, admin password reset, the systemd unit."""
