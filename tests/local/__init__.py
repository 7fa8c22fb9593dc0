"""The offline engine and its booth tab (src/boothgate/local/)."""
