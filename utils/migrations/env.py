"""Alembic environment: runs on the connection `utils.migrations.upgrade` hands over.

Configured in code (no alembic.ini, no fileConfig: the monitor's logging stays as it is).
"""

from __future__ import annotations

from alembic import context

# Handed over in attributes, not imported: `utils` may be loaded under another name (see
# autonomiq_ledger/_leaves.py) when a pipeline runs the migration.
attributes = context.config.attributes
context.configure(connection=attributes["connection"], target_metadata=None,
                  version_table=attributes["version_table"],
                  transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
