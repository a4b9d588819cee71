"""Consistency tokens: what a write leaves and a read may be given, for read-your-writes
on replicas (``todo_app.replicas`` does the routing with them). A token is a WAL
position as one hexadecimal number, or ``primary``; anything else reads on the primary.
"""

from __future__ import annotations

import logging
import re
from typing import Final

__all__ = ["PRIMARY", "PRIMARY_TOKEN", "format_token", "lsn", "newest_token", "parse_token"]

PRIMARY_TOKEN: Final = "primary"  # noqa: S105 - a marker, not a secret
#: ``PRIMARY_TOKEN`` as the repository holds it (an LSN is never negative).
PRIMARY: Final = -1
_TOKEN: Final = re.compile(r"[0-9A-Fa-f]{1,16}")
#: The replicas' logger: what happens to a token is part of their story.
logger = logging.getLogger("todo_app.replicas")


def parse_token(text: object) -> int | None:
    """A token as the repository holds it: a WAL position, ``PRIMARY``, or None for
    no token (None only). Anything that is not a token todo_app makes (an old or
    foreign cookie, ``""``, ``"0"``, pg_lsn's ``16/B374D848``, a negative or too
    long number, not a string) is ``PRIMARY``: its reads run on the primary, never
    on a replica that may lack what the bearer expects, and it is no error."""
    if text is None:
        return None
    if isinstance(text, str):
        stripped = text.strip()
        if stripped == PRIMARY_TOKEN:
            return PRIMARY
        if _TOKEN.fullmatch(stripped) is not None and (position := int(stripped, 16)) > 0:
            return position  # 0 is PostgreSQL's "no position" (InvalidXLogRecPtr)
    logger.debug("%.40r is not a consistency token: reading on the primary", text)
    return PRIMARY


def format_token(position: int | None) -> str | None:
    """The text of a token: the WAL position as one hexadecimal number (pg_lsn
    ``16/B374D848`` is ``16B374D848``), or ``primary``. Letters and digits only: a
    header and a cookie carry it as it is."""
    if position is None:
        return None
    if position == PRIMARY:
        return PRIMARY_TOKEN
    return f"{position:X}"


def lsn(position: int) -> str:
    """pg_lsn's own spelling of a WAL position, for people."""
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


def newest_token(*tokens: str | None) -> str | None:
    """The token that covers all of ``tokens``: for a client that holds tokens from
    several responses (concurrent writes) and must send back one. One that is not
    a token of ours makes it ``primary``, as it makes a read."""
    positions = [position for token in tokens if (position := parse_token(token)) is not None]
    if not positions:
        return None
    return format_token(PRIMARY if PRIMARY in positions else max(positions))
