"""A PostgreSQL database that goes away and comes back, for the tests of what an outage loses."""

from __future__ import annotations

import sqlalchemy as sa


def set_connections(database_url: str, allowed: bool) -> None:
    """Refuse (and end) every connection to the URL's database, or allow them again."""
    url = sa.make_url(database_url)
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
        if not allowed:
            conn.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                {"d": url.database},
            )
    admin.dispose()
