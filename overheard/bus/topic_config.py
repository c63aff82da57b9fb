"""Whether the city's existing topics are what `[bus]` asks for.

Each difference that weakens what the configuration promises is a problem, and the
daemon refuses to start on one (`KafkaBus.ensure_topics`); `overheard check` shows
them as its "topics" row. What is more than asked is only noted:

- partitions: fewer than `bus.partitions` is a problem. A stage scales by adding
  processes up to the partitions, so an operator who configured 6 and started 6
  classify processes would get 2 doing the work and 4 idle, without a word. Kafka can
  add partitions (`kafka-topics.sh --alter --partitions N`) but overheard does not do it
  itself: it moves keys to other partitions, a decision for whoever runs the cluster.
  More partitions than asked are fine (Kafka cannot remove them anyway).
- replication factor: fewer replicas than asked is a problem (a broker's disk holds
  the only copy); more is fine.
- `min.insync.replicas`, when `bus.min_insync_replicas` is set: any other value is a
  problem. Lower, an acknowledged post may live on fewer brokers than the config says;
  higher, losing fewer brokers than planned stops every send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from overheard.settings import BusSettings

MIN_INSYNC = "min.insync.replicas"


@dataclass(frozen=True)
class TopicState:
    """What the cluster says of one existing topic."""

    name: str
    partitions: int
    replication_factor: int
    #: The effective value, the broker's default included.
    min_insync_replicas: int


def describe(admin: KafkaAdminClient, names: Sequence[str]) -> list[TopicState]:
    """The state of those of `names` that exist, in the order given.

    A topic whose partitions the metadata does not list yet (another process is just
    creating it) is left out: there is nothing to judge until it is complete.
    """
    described = {
        d["name"]: d
        for d in admin.describe_topics(list(names))
        if not d.get("error_code") and d.get("partitions")
    }
    present = [name for name in names if name in described]
    if not present:
        return []
    configs = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in present],
        config_filter="all",
    )["topic"]
    states = []
    for name in present:
        partitions = described[name].get("partitions", [])
        replicas = min((len(p["replica_nodes"]) for p in partitions), default=0)
        states.append(
            TopicState(
                name=name,
                partitions=len(partitions),
                replication_factor=replicas,
                min_insync_replicas=int(configs[name][MIN_INSYNC]["value"]),
            )
        )
    return states


def problems(state: TopicState, settings: BusSettings) -> list[str]:
    """How `state` falls short of `settings`, one sentence each naming the topic and the fix."""
    found: list[str] = []
    if state.partitions < settings.partitions:
        found.append(
            f"topic {state.name} has {state.partitions} partition(s), bus.partitions asks for "
            f"{settings.partitions}: add partitions (kafka-topics.sh --alter --topic {state.name} "
            f"--partitions {settings.partitions}) or lower bus.partitions"
        )
    if state.replication_factor < settings.replication_factor:
        found.append(
            f"topic {state.name} has replication factor {state.replication_factor}, "
            f"bus.replication_factor asks for {settings.replication_factor}: reassign its "
            "partitions to more brokers (kafka-reassign-partitions.sh) or lower the setting"
        )
    wanted = settings.min_insync_replicas
    if wanted is not None and state.min_insync_replicas != wanted:
        found.append(
            f"topic {state.name} has {MIN_INSYNC}={state.min_insync_replicas}, "
            f"bus.min_insync_replicas asks for {wanted}: kafka-configs.sh --alter --entity-type "
            f"topics --entity-name {state.name} --add-config {MIN_INSYNC}={wanted}, "
            "or change the setting"
        )
    return found


def summary(states: Sequence[TopicState]) -> str:
    """One line on what the topics have, for `overheard check`."""
    return "; ".join(
        f"{s.name}: {s.partitions} partition(s), replication {s.replication_factor}, "
        f"{MIN_INSYNC}={s.min_insync_replicas}"
        for s in states
    )
