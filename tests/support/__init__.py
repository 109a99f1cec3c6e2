"""Test helpers: bounded waits, recorded-data loaders, the stub vertica_sdk."""
