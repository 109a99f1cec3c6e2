"""Dagster definitions: thin wiring of pipeline adapters into assets, sensors, schedules."""
