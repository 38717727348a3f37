"""Shared building blocks: settings, database, HTTP, X client, logging, redaction."""
