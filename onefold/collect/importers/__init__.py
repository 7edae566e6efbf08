"""Importers for sources that are not SDKs: JSONL backfills and mapped CSV records."""
