"""The live signal path (issue 17): per-trade provisional statistics beside the batch.

``polygon-market-data`` -> consumer group -> :mod:`pipeline.live.partition` (pure: day
tracking, rejects, replay point) -> :mod:`pipeline.live.state` (pure: one symbol-day's
online state, O(1) per trade, built on the batch kernels' resumable filters) ->
``trading-signals`` (``signal.v1``, :mod:`pipeline.kafka.codec`). The service that wires
them to Kafka is :mod:`pipeline.live.service`. The batch path stays the source of truth.
"""
