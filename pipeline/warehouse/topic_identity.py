"""Which topic the offset ledger is loading under a name: its Kafka topic id and epoch (pure).

Kafka offsets mean something only within one topic: a topic deleted and recreated under
the same name starts again at offset 0 with a new topic id. The ledger therefore stores,
with every row, the Kafka topic id the batch was read from (``kafka_offsets.kafka_topic_id``).

- A Kafka id that differs from the ledger's stops loading that topic
  (:class:`~pipeline.errors.TopicRecreatedError`, from :func:`check_topic_identity`): going
  on from the old ledger end would skip the new topic's offsets below it, silently.
- ``microstructure kafka acknowledge-topic`` starts the topic's next *epoch* (0 is the topic
  first loaded under the name), in one transaction: the topic's ledger rows move to
  ``kafka_offsets_history`` (kept, with their epoch), and one row per partition in
  ``kafka_topic_epochs`` (:func:`acknowledgement_rows`) says "from now on topic id X is the
  topic, loading from offset S". ``kafka_offsets`` so keeps only the current topic's rows:
  its key, its next offset ``max(stop_offset)`` and its readers stay right. Trades the new
  topic repeats are not stored twice (dedup).
- Rows written before migration 0012 have no id (NULL): the next load adopts them,
  recording the id it reads in its own row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import TopicRecreatedError


@dataclass(frozen=True, slots=True)
class TopicIncarnation:
    """The ledger's current epoch of a topic name and the Kafka topic id recorded for it.

    Attributes
    ----------
    topic
        The topic name.
    epoch
        0 for the topic first loaded, +1 per acknowledged recreation.
    topic_id
        Kafka's id of the topic being loaded; None when none was recorded (rows written
        before migration 0012, or by a caller that did not know the id).
    """

    topic: str
    epoch: int
    topic_id: str | None


def incarnation_of(
    topic: str,
    latest_epoch: tuple[int, str] | None,
    n_ledger_rows: int,
    ledger_topic_id: str | None,
) -> TopicIncarnation | None:
    """Return the current incarnation from what the warehouse holds of ``topic``.

    Parameters
    ----------
    topic
        The topic name.
    latest_epoch
        ``(epoch, topic id)`` of the latest acknowledgement; None when there was none.
    n_ledger_rows
        Rows of the topic in ``kafka_offsets`` (the current topic's only).
    ledger_topic_id
        The id those rows recorded (None: none recorded).

    Returns
    -------
    TopicIncarnation | None
        None when the topic was never loaded nor acknowledged. The ledger rows' id wins
        over the acknowledged one (a load checks they agree before it writes).
    """
    if latest_epoch is None and n_ledger_rows == 0:
        return None
    epoch, acknowledged_id = latest_epoch if latest_epoch is not None else (0, None)
    return TopicIncarnation(topic, epoch, ledger_topic_id or acknowledged_id)


def acknowledge_command(topic: str, topic_id: str | None) -> str:
    """Return the command that acknowledges ``topic_id`` as the topic named ``topic``.

    Parameters
    ----------
    topic
        Topic name.
    topic_id
        The id to acknowledge (the one Kafka has now).

    Returns
    -------
    str
        The ``microstructure kafka acknowledge-topic`` invocation.
    """
    expect = f" --topic-id {topic_id}" if topic_id else ""
    return f"microstructure kafka acknowledge-topic --topic {topic}{expect}"


def check_topic_identity(incarnation: TopicIncarnation | None, kafka_topic_id: str | None) -> None:
    """Refuse to load when Kafka's topic is not the one the ledger's current epoch loaded.

    Parameters
    ----------
    incarnation
        The ledger's current epoch of the topic (None: never loaded).
    kafka_topic_id
        The id Kafka reports now (None: the cluster has no topic ids, nothing to compare).

    Raises
    ------
    TopicRecreatedError
        If both ids are known and differ; the message names both and the command to run.
    """
    if incarnation is None or incarnation.topic_id is None or kafka_topic_id is None:
        return
    if incarnation.topic_id == kafka_topic_id:
        return
    t = incarnation.topic
    raise TopicRecreatedError(
        f"topic {t!r} was recreated: the warehouse ledger loaded topic id "
        f"{incarnation.topic_id} (epoch {incarnation.epoch}) and Kafka now has topic id "
        f"{kafka_topic_id}. Loading {t} stopped, because going on from the old ledger end "
        "would skip the new topic's offsets below it. To load the new topic from offset 0 "
        f"(the old ledger stays as history; trades already stored are not stored twice), "
        f"run: {acknowledge_command(t, kafka_topic_id)}"
    )


def acknowledgement_rows(
    previous: TopicIncarnation,
    topic_id: str,
    start_offsets: Mapping[int, int],
    acknowledged_ns: int,
) -> list[dict[str, Any]]:
    """Return the ``kafka_topic_epochs`` rows that start the epoch after ``previous``.

    Parameters
    ----------
    previous
        The ledger's current incarnation of the topic.
    topic_id
        Kafka's id of the topic acknowledged.
    start_offsets
        ``{partition: first offset to load}``.
    acknowledged_ns
        Stamp of the acknowledgement.

    Returns
    -------
    list[dict[str, Any]]
        One row per partition (in partition order), one value per column of
        :data:`pipeline.warehouse.queries.TOPIC_EPOCH_COLUMNS`.

    Raises
    ------
    ValueError
        If a start offset is negative.
    """
    rows: list[dict[str, Any]] = []
    for partition in sorted(start_offsets):
        start = start_offsets[partition]
        if start < 0:
            raise ValueError(f"partition {partition}: start offset {start} is negative")
        rows.append(
            {
                "kafka_topic": previous.topic,
                "topic_epoch": previous.epoch + 1,
                "kafka_partition": partition,
                "kafka_topic_id": topic_id,
                "start_offset": start,
                "previous_topic_id": previous.topic_id,
                "acknowledged_ns": acknowledged_ns,
            }
        )
    return rows
