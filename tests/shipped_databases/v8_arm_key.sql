-- A fresh database at schema version 8 (step 8 gives daily_metric one foreign key, to
-- variant (id, experiment_id), and drops daily_metric_experiment_id and
-- daily_metric_variant_id), made by the code of the commit that adds this file:
--   python -c "from core.migrations import open_database; from core.settings import DatabaseSettings;
--              open_database(DatabaseSettings(path='v8.db')).close()"
--   python -c "import sqlite3; print(*sqlite3.connect('v8.db').iterdump(), sep='\n')"
BEGIN TRANSACTION;
CREATE TABLE "allocation" ("id" INTEGER NOT NULL PRIMARY KEY, "experiment_id" INTEGER NOT NULL, "variant_id" INTEGER NOT NULL, "effective_date" DATE NOT NULL, "percentage" REAL NOT NULL, "probability" REAL NOT NULL, "seed" INTEGER NOT NULL, "run_id" INTEGER NOT NULL, "created_at" DATETIME NOT NULL, FOREIGN KEY ("experiment_id") REFERENCES "experiment" ("id") ON DELETE CASCADE, FOREIGN KEY ("variant_id") REFERENCES "variant" ("id") ON DELETE CASCADE, FOREIGN KEY ("run_id") REFERENCES "run" ("id"));
CREATE TABLE "allocation_reason" ("id" INTEGER NOT NULL PRIMARY KEY, "experiment_id" INTEGER NOT NULL, "effective_date" DATE NOT NULL, "run_id" INTEGER NOT NULL, "reason" VARCHAR(255) NOT NULL, "explanation" TEXT NOT NULL, "buckets" TEXT, FOREIGN KEY ("experiment_id") REFERENCES "experiment" ("id") ON DELETE CASCADE, FOREIGN KEY ("run_id") REFERENCES "run" ("id"));
CREATE TABLE "archived_variant" ("id" INTEGER NOT NULL PRIMARY KEY, "variant_id" INTEGER NOT NULL, "experiment_id" INTEGER NOT NULL, "archived_at" DATETIME NOT NULL, FOREIGN KEY ("variant_id") REFERENCES "variant" ("id") ON DELETE CASCADE, FOREIGN KEY ("experiment_id") REFERENCES "experiment" ("id") ON DELETE CASCADE);
CREATE TABLE "counter" ("name" VARCHAR(255) NOT NULL PRIMARY KEY, "value" INTEGER NOT NULL);
INSERT INTO "counter" VALUES('serving',0);
CREATE TABLE "daily_metric" ("id" INTEGER NOT NULL PRIMARY KEY, "experiment_id" INTEGER NOT NULL, "variant_id" INTEGER NOT NULL, "date" DATE NOT NULL, "impressions" INTEGER NOT NULL, "clicks" INTEGER NOT NULL, "updated_at" DATETIME NOT NULL, FOREIGN KEY ("variant_id", "experiment_id") REFERENCES "variant" ("id", "experiment_id") ON DELETE CASCADE);
CREATE TABLE "experiment" ("id" INTEGER NOT NULL PRIMARY KEY, "name" VARCHAR(128) NOT NULL, "created_at" DATETIME NOT NULL, "version" INTEGER NOT NULL);
CREATE TABLE "experiment_policy" ("id" INTEGER NOT NULL PRIMARY KEY, "experiment_id" INTEGER NOT NULL, "min_allocation" REAL, "min_impressions" INTEGER, "exploration_days" INTEGER, "winner_probability" REAL, "value_remaining" REAL, "auto_rollout" INTEGER, "window_days" INTEGER, "discount" REAL, "method" VARCHAR(255), "archived_at" DATETIME, "updated_at" DATETIME NOT NULL, "assignment" VARCHAR(255), FOREIGN KEY ("experiment_id") REFERENCES "experiment" ("id") ON DELETE CASCADE);
CREATE TABLE "run" ("id" INTEGER NOT NULL PRIMARY KEY, "trigger" VARCHAR(255) NOT NULL, "effective_date" DATE NOT NULL, "experiment_filter" VARCHAR(255), "started_at" DATETIME NOT NULL, "finished_at" DATETIME, "status" VARCHAR(255) NOT NULL, "experiments_processed" INTEGER NOT NULL, "error" TEXT, "scheduled_for" DATETIME, "lease_until" DATETIME, "holder" VARCHAR(255), "phase_seconds" TEXT);
CREATE TABLE "schema_version" ("id" INTEGER NOT NULL PRIMARY KEY, "version" INTEGER NOT NULL);
INSERT INTO "schema_version" VALUES(1,1);
INSERT INTO "schema_version" VALUES(2,2);
INSERT INTO "schema_version" VALUES(3,3);
INSERT INTO "schema_version" VALUES(4,4);
INSERT INTO "schema_version" VALUES(5,5);
INSERT INTO "schema_version" VALUES(6,6);
INSERT INTO "schema_version" VALUES(7,7);
INSERT INTO "schema_version" VALUES(8,8);
CREATE TABLE "variant" ("id" INTEGER NOT NULL PRIMARY KEY, "experiment_id" INTEGER NOT NULL, "name" VARCHAR(128) NOT NULL, "created_at" DATETIME NOT NULL, FOREIGN KEY ("experiment_id") REFERENCES "experiment" ("id") ON DELETE CASCADE);
CREATE UNIQUE INDEX "experiment_name" ON "experiment" ("name");
CREATE INDEX "experiment_version" ON "experiment" ("version");
CREATE INDEX "variant_experiment_id" ON "variant" ("experiment_id");
CREATE UNIQUE INDEX "variant_experiment_id_name" ON "variant" ("experiment_id", "name");
CREATE INDEX "allocation_variant_id" ON "allocation" ("variant_id");
CREATE INDEX "allocation_run_id" ON "allocation" ("run_id");
CREATE UNIQUE INDEX "allocation_experiment_id_effective_date_variant_id" ON "allocation" ("experiment_id", "effective_date", "variant_id");
CREATE INDEX "allocation_reason_run_id" ON "allocation_reason" ("run_id");
CREATE UNIQUE INDEX "allocation_reason_experiment_id_effective_date" ON "allocation_reason" ("experiment_id", "effective_date");
CREATE UNIQUE INDEX "archived_variant_variant_id" ON "archived_variant" ("variant_id");
CREATE INDEX "archived_variant_experiment_id" ON "archived_variant" ("experiment_id");
CREATE UNIQUE INDEX "experiment_policy_experiment_id" ON "experiment_policy" ("experiment_id");
CREATE INDEX "run_scheduled_for" ON "run" ("scheduled_for");
CREATE UNIQUE INDEX "run_one_live_per_scheduled_time" ON "run" ("scheduled_for") WHERE status IN ('running', 'success');
CREATE UNIQUE INDEX "variant_id_experiment_id" ON "variant" ("id", "experiment_id");
CREATE UNIQUE INDEX "daily_metric_experiment_id_date_variant_id" ON "daily_metric" ("experiment_id", "date", "variant_id");
COMMIT;
