"""Version 4: drop the indexes on experiment_id alone. The unique indexes starting with
experiment_id serve its lookups and its foreign key alike, and each of these cost the
publish a B-tree insert per row, at a place that moves with every experiment."""


def up(migrator, db) -> None:
    migrator.migrate(
        migrator.drop_index("allocation", "allocation_experiment_id"),
        migrator.drop_index("allocation_reason", "allocation_reason_experiment_id"),
    )
