"""Persistence of the embedded store: write-ahead log, snapshots, crash recovery."""
