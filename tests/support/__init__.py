"""Shared pieces of the tests: small random-weight models and clips, the official reference, a hub cache."""
