"""Benchmarks behind ``microstructure bench``; they print figures, tests never time anything."""
