-- A fresh database as the code of commit 34ff93e made it (schema version 1):
--   git archive 34ff93e | tar -x -C /tmp/34ff93e; cd /tmp/34ff93e
--   python -c "from core.db import init_database; from core.settings import DatabaseSettings;
--              init_database(DatabaseSettings(path='v1.db'))"
--   python -c "import sqlite3; print(*sqlite3.connect('v1.db').iterdump(), sep='\n')"
BEGIN TRANSACTION;
CREATE TABLE "allocation" ("id" INTEGER NOT NULL PRIMARY KEY, "experiment_id" INTEGER NOT NULL, "variant_id" INTEGER NOT NULL, "effective_date" DATE NOT NULL, "percentage" REAL NOT NULL, "probability" REAL NOT NULL, "seed" INTEGER NOT NULL, "run_id" INTEGER NOT NULL, "created_at" DATETIME NOT NULL, FOREIGN KEY ("experiment_id") REFERENCES "experiment" ("id") ON DELETE CASCADE, FOREIGN KEY ("variant_id") REFERENCES "variant" ("id") ON DELETE CASCADE, FOREIGN KEY ("run_id") REFERENCES "run" ("id"));
CREATE TABLE "counter" ("name" VARCHAR(255) NOT NULL PRIMARY KEY, "value" INTEGER NOT NULL);
INSERT INTO "counter" VALUES('serving',0);
CREATE TABLE "daily_metric" ("id" INTEGER NOT NULL PRIMARY KEY, "experiment_id" INTEGER NOT NULL, "variant_id" INTEGER NOT NULL, "date" DATE NOT NULL, "impressions" INTEGER NOT NULL, "clicks" INTEGER NOT NULL, "updated_at" DATETIME NOT NULL, FOREIGN KEY ("experiment_id") REFERENCES "experiment" ("id") ON DELETE CASCADE, FOREIGN KEY ("variant_id") REFERENCES "variant" ("id") ON DELETE CASCADE);
CREATE TABLE "experiment" ("id" INTEGER NOT NULL PRIMARY KEY, "name" VARCHAR(128) NOT NULL, "created_at" DATETIME NOT NULL, "version" INTEGER NOT NULL);
CREATE TABLE "run" ("id" INTEGER NOT NULL PRIMARY KEY, "trigger" VARCHAR(255) NOT NULL, "effective_date" DATE NOT NULL, "experiment_filter" VARCHAR(255), "started_at" DATETIME NOT NULL, "finished_at" DATETIME, "status" VARCHAR(255) NOT NULL, "experiments_processed" INTEGER NOT NULL, "error" TEXT);
CREATE TABLE "schema_version" ("id" INTEGER NOT NULL PRIMARY KEY, "version" INTEGER NOT NULL);
INSERT INTO "schema_version" VALUES(1,1);
CREATE TABLE "variant" ("id" INTEGER NOT NULL PRIMARY KEY, "experiment_id" INTEGER NOT NULL, "name" VARCHAR(128) NOT NULL, "created_at" DATETIME NOT NULL, FOREIGN KEY ("experiment_id") REFERENCES "experiment" ("id") ON DELETE CASCADE);
CREATE UNIQUE INDEX "experiment_name" ON "experiment" ("name");
CREATE INDEX "experiment_version" ON "experiment" ("version");
CREATE INDEX "variant_experiment_id" ON "variant" ("experiment_id");
CREATE UNIQUE INDEX "variant_experiment_id_name" ON "variant" ("experiment_id", "name");
CREATE INDEX "allocation_experiment_id" ON "allocation" ("experiment_id");
CREATE INDEX "allocation_variant_id" ON "allocation" ("variant_id");
CREATE INDEX "allocation_run_id" ON "allocation" ("run_id");
CREATE UNIQUE INDEX "allocation_experiment_id_effective_date_variant_id" ON "allocation" ("experiment_id", "effective_date", "variant_id");
CREATE INDEX "daily_metric_experiment_id" ON "daily_metric" ("experiment_id");
CREATE INDEX "daily_metric_variant_id" ON "daily_metric" ("variant_id");
CREATE UNIQUE INDEX "daily_metric_experiment_id_date_variant_id" ON "daily_metric" ("experiment_id", "date", "variant_id");
COMMIT;
