"""Database setup: the only module that knows the backend is SQLite.

WAL lets the web process read while the clock writes; synchronous=FULL makes an
acknowledged write survive a power cut, not only a crash; writes begin IMMEDIATE so
concurrent writers queue on the busy timeout instead of failing mid-transaction when a
read lock cannot be upgraded.
"""

from peewee import SqliteDatabase

from core.settings import DatabaseSettings

database = SqliteDatabase(None)


def pragmas(settings: DatabaseSettings) -> dict:
    return {
        "journal_mode": "wal",
        "synchronous": settings.synchronous,
        "busy_timeout": settings.busy_timeout_ms,
        "foreign_keys": 1,
    }


def init_database(settings: DatabaseSettings) -> SqliteDatabase:
    """Point the shared database at a file and bring its schema up to date."""
    from core.migrations import migrate

    if not database.is_closed():
        database.close()
    database.init(settings.path, pragmas=pragmas(settings))
    with database.connection_context():
        migrate(database)
    return database


def write_transaction():
    """A transaction that takes the write lock up front."""
    return database.atomic("IMMEDIATE")


def read_transaction():
    """A transaction that gives one consistent snapshot across several queries."""
    return database.atomic("DEFERRED")
