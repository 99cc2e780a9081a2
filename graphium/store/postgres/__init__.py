"""The PostgreSQL task store (psycopg 3): several servers sharing one database.

Modules: :mod:`.store` (the store and its non-task records), :mod:`.tasks` (task operations),
:mod:`.claims` (claim and lease-expiry SQL), :mod:`.session` (pool, batches, commit hooks),
:mod:`.schema` (versioned migrations), :mod:`.rows` (records to rows), :mod:`.notify`
(LISTEN/NOTIFY between replicas), :mod:`.leadership` (advisory-lock leadership). Only this
package imports psycopg; open it through :func:`graphium.store.open.open_store`.
"""

from graphium.store.postgres.leadership import Leadership
from graphium.store.postgres.store import PostgresTaskStore

__all__ = ["Leadership", "PostgresTaskStore"]
