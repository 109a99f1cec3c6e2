"""Fault-injection campaigns behind ``microstructure faults``."""
