"""The SQL sink: issues as rows in SQLite (embedded default) or PostgreSQL."""

from overheard.sinks.sql.sink import SqlSink, from_settings

__all__ = ["SqlSink", "from_settings"]
