"""Postgres access: the pool, migrations applied at start-up, and one repository per aggregate."""
