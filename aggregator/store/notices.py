"""Notices: short messages plugins leave for a person (a webhook said there are new
transactions, a connection needs attention), newest first, capped."""

from __future__ import annotations

import json
from dataclasses import dataclass

from aggregator.store import key_names
from aggregator.store.base import Repository

MAX_NOTICES = 50


@dataclass(frozen=True)
class Notice:
    time: int
    provider: str
    message: str
    registration_id: str | None = None


class NoticeRepository(Repository):
    def add(self, person_id: str, notice: Notice) -> None:
        key = key_names.notices(person_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.lpush(key, json.dumps(notice.__dict__, separators=(",", ":")))
        pipe.ltrim(key, 0, MAX_NOTICES - 1)
        pipe.execute()

    def for_person(self, person_id: str, limit: int = 10) -> list[Notice]:
        return [Notice(**json.loads(raw)) for raw in self.redis.lrange(key_names.notices(person_id), 0,
                                                                        limit - 1)]
