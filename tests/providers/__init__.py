"""One provider module family per service against its wire-format fake (src/boothgate/providers/)."""
