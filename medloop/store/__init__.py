"""Persistence: engine set-up, tables and migrations."""
