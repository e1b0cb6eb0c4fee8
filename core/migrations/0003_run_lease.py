"""Version 3: a run row becomes the run's lease. A live process renews lease_until; a
'running' row whose lease ran out belongs to a process that died. scheduled_for is the
nightly fire time the run is for, holder the host:pid running it."""

from peewee import CharField, DateTimeField


def up(migrator, db) -> None:
    migrator.migrate(
        migrator.add_column("run", "scheduled_for", DateTimeField(null=True)),
        migrator.add_column("run", "lease_until", DateTimeField(null=True)),
        migrator.add_column("run", "holder", CharField(null=True)),
        migrator.add_index("run", ("scheduled_for",)),
    )
