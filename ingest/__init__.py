"""The write path: validate daily metrics and upsert them; the bulk loader CLI."""
