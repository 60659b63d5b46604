"""Hostile sites, crashes, bad input and unsafe content (docs/reliability.md lists what each proves)."""
