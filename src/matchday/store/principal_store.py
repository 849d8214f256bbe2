"""Users, API tokens and login sessions: the rows behind `auth/`, which holds the rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from matchday.store.database import Database, rowcount
from matchday.store.errors import Conflict, NotFound
from matchday.store.records import SessionRecord, TokenRecord, UserRecord
from matchday.store.schema import ApiTokenRow, SessionRow, UserRow, utcnow

_SESSION_TOUCH = timedelta(minutes=1)  # a session's last-seen time is written at most this often


class PrincipalNotFound(NotFound):
    pass


class PrincipalStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- users -------------------------------------------------------------------------------------
    def add_user(self, name: str, password_hash: str, roles: Sequence[str], created_by: str) -> UserRecord:
        with self.db.session(write=True) as s:
            if s.scalar(sa.select(UserRow.id).where(UserRow.name == name)) is not None:
                raise Conflict(f"user {name!r} already exists")
            row = UserRow(name=name, password_hash=password_hash, roles=list(roles), created_by=created_by)
            s.add(row)
            s.flush()
            return _user(row)

    def user(self, name: str) -> UserRecord | None:
        with self.db.session() as s:
            row = s.scalar(sa.select(UserRow).where(UserRow.name == name))
            return _user(row) if row is not None else None

    def users(self) -> list[UserRecord]:
        with self.db.session() as s:
            return [_user(r) for r in s.scalars(sa.select(UserRow).order_by(UserRow.name))]

    def update_user(self, name: str, *, password_hash: str | None = None, roles: Sequence[str] | None = None) -> None:
        """A new password logs the user out everywhere (its sessions end)."""
        with self.db.session(write=True) as s:
            row = s.scalar(sa.select(UserRow).where(UserRow.name == name))
            if row is None:
                raise PrincipalNotFound(f"no user named {name!r}")
            if password_hash is not None:
                row.password_hash = password_hash
                s.execute(sa.delete(SessionRow).where(SessionRow.user_id == row.id))
            if roles is not None:
                row.roles = list(roles)

    def remove_user(self, name: str) -> None:
        with self.db.session(write=True) as s:
            row = s.scalar(sa.select(UserRow).where(UserRow.name == name))
            if row is None:
                raise PrincipalNotFound(f"no user named {name!r}")
            s.execute(sa.delete(SessionRow).where(SessionRow.user_id == row.id))  # SQLite without FK pragma too
            s.delete(row)

    # -- tokens ------------------------------------------------------------------------------------
    def add_token(
        self,
        *,
        key: str,
        digest: str,
        name: str,
        roles: Sequence[str],
        deployments: Sequence[str] | None,
        created_by: str,
        expires_at: datetime | None,
    ) -> TokenRecord:
        with self.db.session(write=True) as s:
            row = ApiTokenRow(
                key=key,
                digest=digest,
                name=name,
                roles=list(roles),
                deployments=list(deployments) if deployments is not None else None,
                created_by=created_by,
                expires_at=expires_at,
                changed_at=utcnow(),
            )
            s.add(row)
            s.flush()
            return _token(row)

    def tokens(self) -> list[TokenRecord]:
        """Every token, revoked and expired ones too (the audit trail names them), oldest first."""
        with self.db.session() as s:
            return [_token(r) for r in s.scalars(sa.select(ApiTokenRow).order_by(ApiTokenRow.id))]

    def revoke_token(self, key: str) -> TokenRecord:
        """Revoked now (a second revoke keeps the first time)."""
        with self.db.session(write=True) as s:
            row = s.scalar(sa.select(ApiTokenRow).where(ApiTokenRow.key == key))
            if row is None:
                raise PrincipalNotFound(f"no token with key {key!r}")
            if row.revoked_at is None:
                now = utcnow()
                row.revoked_at, row.changed_at = now, now
            return _token(row)

    def mark_used(self, used: Mapping[str, datetime]) -> None:
        """Last-used times by key (written in one go by the servers, not per request)."""
        if not used:
            return
        with self.db.session(write=True) as s:
            for key, at in sorted(used.items()):
                s.execute(
                    sa.update(ApiTokenRow)
                    .where(ApiTokenRow.key == key)
                    .where(sa.or_(ApiTokenRow.last_used_at.is_(None), ApiTokenRow.last_used_at < at))
                    .values(last_used_at=at)
                )

    def revision(self) -> tuple[int, datetime | None, int]:
        """What changes when any credential does: (tokens, their latest change, users). Polled by servers."""
        with self.db.session() as s:
            tokens, changed = s.execute(
                sa.select(sa.func.count(ApiTokenRow.id), sa.func.max(ApiTokenRow.changed_at))
            ).one()
            users = s.scalar(sa.select(sa.func.count(UserRow.id))) or 0
            return int(tokens), changed, int(users)

    # -- sessions ----------------------------------------------------------------------------------
    def add_session(self, session_id: str, user_id: int, csrf: str, expires_at: datetime) -> None:
        with self.db.session(write=True) as s:
            now = utcnow()
            s.execute(sa.delete(SessionRow).where(SessionRow.expires_at < now))  # old logins go as new ones come
            s.add(SessionRow(id=session_id, user_id=user_id, csrf=csrf, expires_at=expires_at, last_seen_at=now))

    def session(self, session_id: str) -> SessionRecord | None:
        """The session and its user, while it has not expired; its last-seen time moved now and then."""
        now = utcnow()
        with self.db.session() as s:
            found = s.execute(
                sa.select(SessionRow, UserRow)
                .join(UserRow, UserRow.id == SessionRow.user_id)
                .where(SessionRow.id == session_id, SessionRow.expires_at > now)
            ).one_or_none()
        if found is None:
            return None
        session, user = found
        if now - session.last_seen_at > _SESSION_TOUCH:
            with self.db.session(write=True) as s:
                s.execute(sa.update(SessionRow).where(SessionRow.id == session_id).values(last_seen_at=now))
        return SessionRecord(
            id=session.id,
            user=_user(user),
            csrf=session.csrf,
            created_at=session.created_at,
            expires_at=session.expires_at,
            last_seen_at=session.last_seen_at,
        )

    def remove_session(self, session_id: str) -> bool:
        with self.db.session(write=True) as s:
            return rowcount(s.execute(sa.delete(SessionRow).where(SessionRow.id == session_id))) > 0


def _user(row: UserRow) -> UserRecord:
    return UserRecord(
        id=row.id,
        name=row.name,
        roles=tuple(row.roles),
        password_hash=row.password_hash,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _token(row: ApiTokenRow) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        key=row.key,
        digest=row.digest,
        name=row.name,
        roles=tuple(row.roles),
        deployments=tuple(row.deployments) if row.deployments is not None else None,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )
