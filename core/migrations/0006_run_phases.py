"""Version 6: a run records how long each phase took (compute, staging, the publish
transaction), as a JSON object of seconds, so GET /runs and /metrics can show it."""

from peewee import TextField


def up(migrator, db) -> None:
    migrator.migrate(migrator.add_column("run", "phase_seconds", TextField(null=True)))
