"""Opaque keyset cursors for listing tasks in ``(created_at, id)`` order.

A cursor is the position of the last row a page returned, plus the order and the
filter it belongs to, so a cursor cannot silently be used with another query. It is
URL-safe base64 of a small JSON document: opaque to clients, not secret (it holds
nothing the client did not already receive).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Literal

from todo_app import rules
from todo_app.errors import TaskValidationError

__all__ = ["Cursor", "Order"]

Order = Literal["newest", "oldest"]
_MAX_CURSOR_LENGTH = 512


@dataclass(frozen=True)
class Cursor:
    created_at: dt.datetime
    id: uuid.UUID
    order: Order
    status: str | None

    def encode(self) -> str:
        document = {
            "t": self.created_at.astimezone(dt.UTC).isoformat(),
            "i": str(self.id),
            "o": self.order,
            "s": self.status,
        }
        raw = json.dumps(document, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, token: str, *, order: Order, status: str | None) -> Cursor:
        """Parse a cursor made for this order and status filter, or raise
        ``TaskValidationError`` (field ``cursor``) saying why not."""
        if not isinstance(token, str) or not token or len(token) > _MAX_CURSOR_LENGTH:
            raise TaskValidationError("cursor", "is not a cursor this API returned")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            document = json.loads(raw)
            moment, task_id = document["t"], document["i"]
            if not isinstance(moment, str) or not isinstance(task_id, str):
                raise TypeError
            cursor = cls(
                created_at=rules.clean_datetime(dt.datetime.fromisoformat(moment)),
                id=uuid.UUID(task_id),
                order=document["o"],
                status=document["s"],
            )
        except (
            binascii.Error,
            ValueError,
            TypeError,
            KeyError,
            AttributeError,
        ):
            raise TaskValidationError("cursor", "is not a cursor this API returned") from None
        if cursor.order != order or cursor.status != status:
            raise TaskValidationError(
                "cursor", "belongs to a listing with another order or status filter"
            )
        return cursor
