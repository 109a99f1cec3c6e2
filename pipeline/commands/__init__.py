"""Subcommands of ``microstructure``; each module exposes ``register(subparsers)``."""
