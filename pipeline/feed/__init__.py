"""The market-data feed: wire shapes, the pure parser, trade files, sources, supervision, replay."""
