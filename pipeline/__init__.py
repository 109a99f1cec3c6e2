"""Market-microstructure pipeline: core and adapters.

The flow, end to end::

    Polygon/Massive WebSocket (or replay-server)
      -> feed.parse (pure)           frames -> Trade / FeedStatus / Reject
      -> kafka.codec (pure)          events -> key (symbol), JSON value, headers
      -> kafka.producer              acks=all, idempotent, every delivery checked
      -> Kafka topic polygon-market-data
      -> kafka.consumer.read_range   one explicit half-open offset range
      -> microbatch (pure)           records -> trades frame + rejects + gaps
      -> warehouse.load_batch        rows + ledger row in ONE transaction
      -> signals.assemble            symbol-day -> udx.kernels -> three frames
      -> warehouse.publish_signals   replace the day in one transaction
      -> mcp_server (read-only)

Importing this package has no side effects; ``dagster`` and ``mcp`` are never
imported from here (see tests/test_architecture.py).
"""
