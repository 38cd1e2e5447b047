"""Sync engine: field mapping, push, pull, conflicts, outbox and scheduling."""
