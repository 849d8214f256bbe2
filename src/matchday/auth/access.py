"""Access: the one face of who may do what. Makes and revokes tokens and users (each change an
event in the audit trail), logs people in and out, and tells a request's credential apart."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from matchday.auth.credentials import (
    WeakPassword,
    burn_password_check,
    check_password_strength,
    hash_password,
    new_token,
    password_matches,
    split_token,
    token_matches,
)
from matchday.auth.errors import InvalidPrincipal, Unauthenticated
from matchday.auth.login_limits import LoginLimits
from matchday.auth.principal import Principal
from matchday.auth.roles import UnknownRole, effective, parse_roles
from matchday.auth.token_cache import TokenCache
from matchday.durations import parse_duration
from matchday.store import EventStore, PrincipalStore, TokenRecord, UserRecord

AuthMode = Literal["auto", "required"]
SESSION_HOURS = 12
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@\-]{0,99}")


def parse_expiry(text: str | None, now: datetime | None = None) -> datetime | None:
    """A duration from now (``90d``, ``12h``, ``2w``: `matchday.durations`); ``never`` (or nothing) for no expiry.

    >>> parse_expiry("2d", datetime(2026, 1, 1, tzinfo=UTC))
    datetime.datetime(2026, 1, 3, 0, 0, tzinfo=datetime.timezone.utc)
    """
    if text is None or text.strip().lower() in ("", "never"):
        return None
    try:
        return (now or datetime.now(UTC)) + timedelta(seconds=parse_duration(text, positive=True))
    except (ValueError, OverflowError) as exc:
        reason = exc if isinstance(exc, ValueError) else "too far in the future"
        raise InvalidPrincipal(f"cannot read the expiry {text!r}: {reason}; or never") from None


class Access:
    def __init__(
        self, store: PrincipalStore, events: EventStore, mode: AuthMode = "auto", poll_seconds: float = 0.5
    ) -> None:
        self.store, self.events, self.mode = store, events, mode
        self.tokens = TokenCache(store, poll_seconds)
        self.logins = LoginLimits()

    # -- whether to ask at all ----------------------------------------------------------------------
    def enforced(self) -> bool:
        """Credentials are asked for as soon as one user or token exists, or always when required."""
        return self.mode == "required" or self.tokens.any_credential()

    # -- tokens -------------------------------------------------------------------------------------
    def create_token(
        self,
        roles: Iterable[str],
        *,
        name: str,
        created_by: str,
        deployments: Sequence[str] | None = None,
        expires: str | None = None,
    ) -> tuple[str, TokenRecord]:
        """The token (shown once: only its salted digest is stored) and its record."""
        checked = _roles(roles)
        name = name.strip()
        if not name or len(name) > 200 or any(c in name for c in "\r\n\x00"):
            raise InvalidPrincipal("a token's name is one line of 1 to 200 characters (what it is for)")
        made = new_token()
        record = self.store.add_token(
            key=made.key,
            digest=made.digest,
            name=name,
            roles=checked,
            deployments=sorted(set(deployments)) if deployments else None,
            created_by=created_by,
            expires_at=parse_expiry(expires),
        )
        self.events.add(
            "token_created",
            created_by,
            f"token {record.key} ({name}) created with role(s) {', '.join(checked)}",
            {"key": record.key, "roles": list(checked), "deployments": list(record.deployments or [])},
        )
        self.tokens.refresh()
        return made.token, record

    def list_tokens(self) -> list[TokenRecord]:
        return self.store.tokens()

    def revoke_token(self, key_or_token: str, actor: str) -> TokenRecord:
        """By its key (``tokens list`` shows it) or the whole token; at once here, within the poll
        interval on every other server."""
        split = split_token(key_or_token.strip())
        record = self.store.revoke_token(split[0] if split else key_or_token.strip())
        self.events.add("token_revoked", actor, f"token {record.key} ({record.name}) revoked", {"key": record.key})
        self.tokens.refresh()
        return record

    def bearer(self, token: str) -> Principal:
        """The caller a bearer token names, or `Unauthenticated` saying why not."""
        split = split_token(token)
        if split is None:
            raise Unauthenticated("the bearer token is not a matchday token (md_...)")
        record = self.tokens.token(split[0])
        if record is None or not token_matches(split[1], record.digest):
            raise Unauthenticated("unknown token")
        if record.revoked_at is not None:
            raise Unauthenticated("the token was revoked")
        if record.expires_at is not None and record.expires_at <= datetime.now(UTC):
            raise Unauthenticated("the token has expired")
        self.tokens.used(record.key)
        return Principal(
            "token",
            record.name,
            effective(record.roles),
            frozenset(record.deployments) if record.deployments is not None else None,
            key=record.key,
        )

    # -- users --------------------------------------------------------------------------------------
    def add_user(self, name: str, password: str, roles: Iterable[str], created_by: str) -> UserRecord:
        if not _USER_NAME.fullmatch(name):
            raise InvalidPrincipal(
                "a user name is 1 to 100 letters, digits, '_', '.', '@' or '-', starting with a letter or digit"
            )
        checked = _roles(roles)
        _strong(password, name)
        record = self.store.add_user(name, hash_password(password), checked, created_by)
        self.events.add(
            "user_added", created_by, f"user {name} added with role(s) {', '.join(checked)}", {"user": name}
        )
        self.tokens.refresh()
        return record

    def set_password(self, name: str, password: str, actor: str) -> None:
        _strong(password, name)
        self.store.update_user(name, password_hash=hash_password(password))
        self.events.add("password_changed", actor, f"password of {name} changed (its sessions ended)", {"user": name})

    def remove_user(self, name: str, actor: str) -> None:
        self.store.remove_user(name)
        self.events.add("user_removed", actor, f"user {name} removed", {"user": name})
        self.tokens.refresh()

    def list_users(self) -> list[UserRecord]:
        return self.store.users()

    # -- sessions -----------------------------------------------------------------------------------
    def login(self, name: str, password: str, address: str) -> tuple[str, Principal]:
        """A new session's cookie secret and its principal; `TooManyAttempts` past the limits."""
        self.logins.check(name, address)
        user = self.store.user(name) if _USER_NAME.fullmatch(name) else None
        if user is None:
            burn_password_check()  # the same time as a wrong password: no probing for names
            ok = False
        else:
            ok = password_matches(password, user.password_hash)
        if not ok or user is None:
            self.logins.failed(name, address)
            raise Unauthenticated("wrong user name or password")
        self.logins.succeeded(name)
        secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + timedelta(hours=SESSION_HOURS)
        self.store.add_session(_session_id(secret), user.id, csrf, expires)
        return secret, Principal("user", user.name, effective(user.roles), csrf=csrf, session_id=_session_id(secret))

    def session(self, secret: str) -> Principal | None:
        """The user a session cookie belongs to, while it lasts."""
        if not secret or len(secret) > 200:
            return None
        found = self.store.session(_session_id(secret))
        if found is None:
            return None
        return Principal("user", found.user.name, effective(found.user.roles), csrf=found.csrf, session_id=found.id)

    def logout(self, secret: str) -> None:
        self.store.remove_session(_session_id(secret))

    # -- lifetime -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Load the tokens and keep them fresh (a server's lifespan)."""
        self.tokens.refresh()
        self.tokens.start()

    def close(self) -> None:
        self.tokens.close()


def _session_id(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _roles(roles: Iterable[str]) -> tuple[str, ...]:
    try:
        return parse_roles(roles)
    except UnknownRole as exc:
        raise InvalidPrincipal(str(exc)) from exc


def _strong(password: str, name: str) -> None:
    try:
        check_password_strength(password, name)
    except WeakPassword as exc:
        raise InvalidPrincipal(str(exc)) from exc
