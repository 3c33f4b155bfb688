"""Monitoring mode: per-patient streams, online alarms and their history in a database."""
