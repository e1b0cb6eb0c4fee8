"""Version 5: sticky assignment. experiment_policy.assignment is the policy key (sticky or
daily; NULL: the config default); allocation_reason.buckets says which arm owned which
buckets that day (core/assign.py's text); NULL for splits published before."""

from peewee import CharField, TextField


def up(migrator, db) -> None:
    migrator.migrate(
        migrator.add_column("experiment_policy", "assignment", CharField(null=True)),
        migrator.add_column("allocation_reason", "buckets", TextField(null=True)),
    )
