"""The contracts between planning, running and the store (Ray-free).

A `Trial` is a pack of members trained together. Its JSON form is what a plan record
holds, what Tune carries to the worker and what the recorder and the collector read
back: converted here, once each way, with the members' config hashes computed once.
`Resources` is what each trial asks Ray for; `ExpState` and `MemberState` the words a
study records for an experiment and a member.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from trainer import TrainConfig

TRIAL_KEY = re.compile(r"^[0-9a-f]{12}\Z")  # it becomes a directory name


class ExpState(enum.StrEnum):
    """An experiment's status in study.json."""
    RUNNING = "running"  # launched; a killed driver leaves it so, for `resume`
    FINISHED = "finished"
    ERRORED = "errored"  # some trial failed: `resume --retry-errored`
    CONTINUED = "continued"  # its unfinished trials moved to a later experiment
    IMPORTED = "imported"  # members from a published table (sweep.store.publish)


class MemberState(enum.StrEnum):
    """A member's `status` in results.csv."""
    COMPLETED = "completed"
    ERRORED = "errored"


def member_from_dict(d: Mapping[str, Any]) -> TrainConfig:
    """A member's config from its JSON form (lists back to tuples). TypeError for an
    unknown key, ConfigError for a bad value: a record is read, never trusted."""
    return TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@dataclass(frozen=True)
class Trial:
    key: str  # stable id: a hash of the members' config hashes
    members: tuple[TrainConfig, ...]
    init: tuple[str, ...] = ()  # resume: its pack's checkpoint URIs, newest first
    hashes: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (isinstance(self.key, str) and TRIAL_KEY.match(self.key)):
            raise ValueError(f"trial key {str(self.key)[:20]!r} is not 12 hex digits")
        if not self.members or not all(isinstance(m, TrainConfig) for m in self.members):
            raise TypeError("a trial's members are one or more TrainConfigs")
        if not all(isinstance(u, str) for u in self.init):
            raise TypeError("a trial's init is a list of checkpoint URIs")
        object.__setattr__(self, "hashes", tuple(m.config_hash() for m in self.members))

    @classmethod
    def pack(cls, members: Iterable[TrainConfig]) -> Trial:
        ms = tuple(members)
        key = hashlib.sha256("".join(m.config_hash() for m in ms).encode()).hexdigest()
        return cls(key[:12], ms)

    @property
    def member_steps(self) -> int:
        return sum(m.total_steps for m in self.members)

    def resumed(self, init: Iterable[str]) -> Trial:
        return dataclasses.replace(self, init=tuple(init))

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"key": self.key,
                             "members": [dataclasses.asdict(m) for m in self.members]}
        return d | ({"init": list(self.init)} if self.init else {})

    @classmethod
    def from_json(cls, d: Any) -> Trial:
        """TypeError / ValueError (ConfigError included) unless `d` is a trial record."""
        if not (isinstance(d, dict) and isinstance(d.get("members"), list)
                and all(isinstance(m, dict) for m in d["members"])
                and isinstance(d.get("init", []), list)):
            raise TypeError("a trial is not {key, members[, init]}")
        return cls(d.get("key"), tuple(member_from_dict(m) for m in d["members"]),
                   tuple(d.get("init", ())))


@dataclass(frozen=True)
class Resources:
    """What each trial asks Ray for, and how often Tune retries a failed one."""
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    max_failures: int = 2

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> Resources:
        """From a spec's run section or an experiment's record (defaults where absent)."""
        return cls(**{f.name: record[f.name] for f in dataclasses.fields(cls)
                      if f.name in record})

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def on_gpu(self) -> bool:
        return self.gpus_per_trial > 0
