"""A stand-in host project: its own app, model and connection name."""
