"""The batch: aggregate (SQL) -> sample (numpy) -> publish; and the clock that fires it."""
