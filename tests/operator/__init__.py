"""The operator's tools: events, budgets, exports and presets."""
