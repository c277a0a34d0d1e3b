"""A transcript of every reply, in SQLite (the standard library's sqlite3), as `llm logs` keeps one.

Each chat is a conversation (a new one after /clear or /load); each reply a row with its prompt,
system prompt, model, settings, token counts and time. `qwenctl logs` reads them back; `log = false`
in the config file or `run --no-log` keeps none. Writing never stops a chat: a database that cannot
be written warns once and the chat goes on without it.

The database is ``logs.db`` in the user data directory (platformdirs), or ``QWENCTL_LOGS_DB``.
Schema version 1 (``PRAGMA user_version``)::

    conversations(id TEXT PRIMARY KEY, model TEXT, started_utc TEXT)
    responses(id INTEGER PRIMARY KEY, conversation_id TEXT, model TEXT, datetime_utc TEXT,
              system TEXT, prompt TEXT, response TEXT, finish_reason TEXT, options_json TEXT,
              prompt_tokens INTEGER, generated_tokens INTEGER, duration_ms INTEGER)
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from qwenctl.errors import ExitCode, QwenctlError

if TYPE_CHECKING:
    from qwenctl.backends import SamplingOptions
    from qwenctl.backends.reply import Reply

LOGS_ENV = "QWENCTL_LOGS_DB"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    started_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS responses (
    id INTEGER PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    model TEXT NOT NULL,
    datetime_utc TEXT NOT NULL,
    system TEXT,
    prompt TEXT NOT NULL,
    response TEXT NOT NULL,
    finish_reason TEXT,
    options_json TEXT,
    prompt_tokens INTEGER,
    generated_tokens INTEGER,
    duration_ms INTEGER
);
CREATE INDEX IF NOT EXISTS responses_conversation ON responses(conversation_id);
"""


def logs_path() -> Path:
    named = os.environ.get(LOGS_ENV)
    if named:
        return Path(named).expanduser()
    import platformdirs

    return platformdirs.user_data_path("qwenctl") / "logs.db"


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


def _new_conversation_id() -> str:
    """Sortable by time and readable: 20250101-120304-a1b2c3."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=5.0)
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        db.close()
        raise QwenctlError(f"transcript log {path} has schema version {version}; this qwenctl reads {SCHEMA_VERSION}",
                           hint="upgrade qwenctl, or set QWENCTL_LOGS_DB to another file", code=ExitCode.BAD_INPUT)
    if version < SCHEMA_VERSION:
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.commit()
    return db


class TranscriptLog:
    """Records a chat's replies (the chat.Transcript protocol). `warn` hears, once, why logging stopped."""

    def __init__(self, model: str, path: Path | None = None, warn: Callable[[str], None] | None = None):
        self.model = model
        self.path = path or logs_path()
        self.warn = warn
        self.conversation: str | None = None
        self._written = False  # the current conversation's row exists
        self._db: sqlite3.Connection | None = None
        self._broken = False

    def start(self) -> None:
        self.conversation = _new_conversation_id()
        self._written = False

    def record(self, system: str, prompt: str, reply: Reply, sampling: SamplingOptions) -> None:
        if self._broken:
            return
        from qwenctl.conversation import well_formed  # what was typed or piped may hold bytes that were not UTF-8

        if self.conversation is None:
            self.start()
        try:
            db = self._open()
            if not self._written:
                db.execute("INSERT INTO conversations (id, model, started_utc) VALUES (?, ?, ?)",
                           (self.conversation, self.model, _utc_now()))
                self._written = True
            db.execute(
                "INSERT INTO responses (conversation_id, model, datetime_utc, system, prompt, response, finish_reason, "
                "options_json, prompt_tokens, generated_tokens, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.conversation, self.model, _utc_now(), well_formed(system), well_formed(prompt),
                 well_formed(reply.text), reply.finish_reason,
                 json.dumps(dataclasses.asdict(sampling)), reply.prompt_tokens, reply.generated_tokens,
                 round((reply.prompt_seconds + reply.generation_seconds) * 1000)),
            )
            db.commit()
        except (sqlite3.Error, OSError, QwenctlError) as e:
            self._broken = True
            if self.warn is not None:
                why = e.one_line() if isinstance(e, QwenctlError) else str(e)
                self.warn(f"transcript log off for this chat: cannot write {self.path}: {why}")

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = _connect(self.path)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class LogEntry:
    id: int
    conversation_id: str
    model: str
    datetime_utc: str
    system: str | None
    prompt: str
    response: str
    finish_reason: str | None
    options: dict
    prompt_tokens: int | None
    generated_tokens: int | None
    duration_ms: int | None


@dataclass(frozen=True)
class LogList:
    """What `qwenctl logs` shows: entries oldest first."""

    path: str
    total: int  # responses in the database
    entries: tuple[LogEntry, ...]


def read_logs(path: Path | None = None, *, limit: int = 3, conversation: str | None = None, current: bool = False,
              query: str | None = None, model: str | None = None) -> LogList:
    """The last `limit` replies (0: all), optionally of one conversation (`current`: the latest), whose
    prompt or reply contains `query`, or of a model whose name contains `model`."""
    path = path or logs_path()
    if not path.exists():
        return LogList(str(path), 0, ())
    try:
        db = _connect(path)
        try:
            total = db.execute("SELECT count(*) FROM responses").fetchone()[0]
            if current:
                row = db.execute("SELECT conversation_id FROM responses ORDER BY id DESC LIMIT 1").fetchone()
                conversation = row[0] if row else None
                if conversation is None:
                    return LogList(str(path), total, ())
            where, args = [], []
            if conversation:
                where.append("conversation_id = ?")
                args.append(conversation)
            if query:
                where.append("(prompt LIKE ? OR response LIKE ?)")
                args += [f"%{query}%"] * 2
            if model:
                where.append("model LIKE ?")
                args.append(f"%{model}%")
            sql = ("SELECT id, conversation_id, model, datetime_utc, system, prompt, response, finish_reason, options_json, "
                   "prompt_tokens, generated_tokens, duration_ms FROM responses"
                   + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC"
                   + (" LIMIT ?" if limit else ""))
            rows = db.execute(sql, [*args, *([limit] if limit else [])]).fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        raise QwenctlError(f"transcript log {path} cannot be read: {e}",
                           hint="move it away (a new one starts with the next chat)", code=ExitCode.BAD_INPUT) from None
    entries = tuple(
        LogEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8]) if r[8] else {}, r[9], r[10], r[11])
        for r in reversed(rows)
    )
    return LogList(str(path), total, entries)
