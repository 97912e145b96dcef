"""Chats in the store: conversations with the interpreter about one image, and their messages."""

from __future__ import annotations

from typing import Any

import pandas as pd

from interp.store.core import StoreBase, decode, dumps, loads
from interp.store.records import Conversation, Message

ROLES = ("system", "user", "assistant")  # the messages.role CHECK constraint


class Chats(StoreBase):
    """The `conversations` and `messages` tables."""

    def create_conversation(self, title: str, image: dict[str, Any] | None = None,
                            encoding: str | None = None, threshold_set: str | None = None,
                            model: str | None = None) -> int:
        """Start a chat; `image` is {source, index, pixels: [784 ints]}. Returns its id."""
        with self._connect() as con:
            return con.execute(
                "INSERT INTO conversations (title, image, encoding, threshold_set, model) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                [title, dumps(image), encoding, threshold_set, model]).fetchone()[0]

    def add_message(self, conversation_id: int, role: str, content: str) -> int:
        """Append a turn; returns its turn number (0-based)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        with self._transaction() as con:
            if con.execute("SELECT 1 FROM conversations WHERE id = ?",
                           [conversation_id]).fetchone() is None:
                raise KeyError(f"no conversation {conversation_id}")
            return con.execute(
                "INSERT INTO messages (conversation_id, turn, role, content) SELECT ?, "
                "coalesce(max(turn) + 1, 0), ?, ? FROM messages WHERE conversation_id = ? "
                "RETURNING turn", [conversation_id, role, content, conversation_id]).fetchone()[0]

    def get_conversation(self, conversation_id: int) -> Conversation | None:
        row = self._one("SELECT * FROM conversations WHERE id = ?", [conversation_id])
        return None if row is None else Conversation(**{**row, "image": loads(row["image"])})

    def list_conversations(self) -> pd.DataFrame:
        """Conversations, newest first, with their message count."""
        df = self._df("SELECT c.*, count(m.turn) AS n_messages FROM conversations c "
                      "LEFT JOIN messages m ON m.conversation_id = c.id "
                      "GROUP BY ALL ORDER BY c.created_at DESC, c.id DESC")
        return decode(df, "image")

    def get_messages(self, conversation_id: int) -> list[Message]:
        with self._connect() as con:
            rows = con.execute("SELECT conversation_id, turn, role, content, created_at FROM messages "
                               "WHERE conversation_id = ? ORDER BY turn", [conversation_id]).fetchall()
        return [Message(*row) for row in rows]
