"""Which read connections each primary connection has, and how they are used, as
``tortoise_config()``/``app_config()`` record it for the process (Tortoise drops unknown
keys of an app entry). ``todo_app.replicas`` reads it on every read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ReplicaPolicy", "policies", "register"]


@dataclass(frozen=True)
class ReplicaPolicy:
    """The read connections of one primary connection, and how they are used."""

    connections: tuple[str, ...]
    #: A replica serves reads while it provably holds every commit older than this (s).
    max_lag: float = 5.0
    #: How long a read with a token waits for a replica to replay it (s).
    consistency_wait: float = 0.1
    #: How often the primary's position and each replica are looked at (s).
    check_interval: float = 1.0

    def __post_init__(self) -> None:
        for name in ("max_lag", "consistency_wait", "check_interval"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (value == 0 and name != "consistency_wait"):
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")


policies: dict[str, ReplicaPolicy] = {}


def register(primary: str, read_connections: Sequence[str], **policy: float) -> None:
    """Make ``read_connections`` the replicas of the connection named ``primary``,
    for the process (the last registration of a name wins; none: no replicas)."""
    if isinstance(read_connections, str):
        raise TypeError("read_connections must be a list of connection names")
    names = tuple(read_connections)
    if primary in names:
        raise ValueError(f"connection {primary!r} cannot be a read replica of itself")
    if len(set(names)) != len(names):
        raise ValueError("a read connection is listed twice")
    if names:
        policies[primary] = ReplicaPolicy(names, **policy)
    else:
        policies.pop(primary, None)
