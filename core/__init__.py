"""Shared pieces every process imports: settings, database setup, Peewee models."""
