"""Providers: one module per AI engine, plus the shared contract (`base`) and the registry."""
