"""Kafka adapters: codec (pure), offsets (pure), producer, consumer, local broker."""
