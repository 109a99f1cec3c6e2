"""The pipeline's exception hierarchy.

Every failure that reaches a caller is one of these (or a library error
re-raised ``from`` it). ``pipeline.cli`` maps them to exit codes.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class of every error raised on purpose by the pipeline."""

    exit_code = 1


class ConfigError(PipelineError):
    """A setting is missing or invalid."""

    exit_code = 2


class FeedError(PipelineError):
    """The market-data feed failed (connection, protocol, slow consumer)."""


class AuthError(FeedError):
    """The provider refused the API key; retrying cannot help."""

    exit_code = 3


class MaxConnectionsError(FeedError):
    """The provider refused a second simultaneous connection; retrying cannot help."""

    exit_code = 3


class ParseError(PipelineError):
    """A frame or a record could not be decoded."""


class KafkaError(PipelineError):
    """A Kafka operation failed (delivery, broker, admin)."""


class DeliveryError(KafkaError):
    """A produced message was not acknowledged by the broker."""


class BrokerError(KafkaError):
    """The local broker could not be started, reached or stopped."""


class OffsetError(KafkaError):
    """An offset range cannot be read as asked (expired, beyond the end, timed out)."""


class OffsetConflict(PipelineError):
    """Another loader already committed this offset range; the transaction rolled back."""


class WarehouseError(PipelineError):
    """A warehouse operation failed."""


class MigrationError(WarehouseError):
    """A migration could not be applied."""


class DataError(PipelineError):
    """Input data violates the contract (named row, column and value in the message)."""


class WarehouseLockedError(WarehouseError):
    """Another process held the embedded warehouse file longer than the lock timeout."""


class InjectedFault(PipelineError):
    """A failure injected on purpose at a named step (crash-point tests, ``faults``)."""


class TopicRecreatedError(PipelineError):
    """Kafka's topic under the ledger's name is not the one the ledger loaded (new topic id).

    Loading that topic stops until an operator runs ``microstructure kafka
    acknowledge-topic``: continuing at the old ledger end would skip the new topic's first
    offsets without a trace.
    """
