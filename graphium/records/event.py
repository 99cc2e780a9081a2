"""Event records: something that happened to a stack or task, kept in order for watchers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from graphium.stack.masking import MaskedRepr


class Event(MaskedRepr, BaseModel):
    """Something that happened, for watchers: task_created, task_updated, stack_running, ..."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    seq: int = 0  # assigned by the store, strictly increasing
    type: str
    stack_id: str | None = None
    task_id: str | None = None
    host_id: str | None = None
    run_id: str | None = None  # the run of the stack or task it is about
    data: dict[str, Any] = {}
    time: str = ""

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)
