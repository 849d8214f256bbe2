"""Repository functions for the model registry's metadata; each call is one transaction."""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from matchday.store.database import Database
from matchday.store.errors import AliasNotFound, Conflict, ModelNotFound, VersionNotFound
from matchday.store.profiles import ReferenceProfile
from matchday.store.records import AliasMove, ModelRecord, ModelVersionRecord
from matchday.store.schema import AliasMoveRow, AliasRow, ModelRow, ModelVersionRow, ReferenceProfileRow, utcnow

_RETRIES = 10  # concurrent registrations of one name race for the next version number


class ModelStore:
    """Models, versions, reference profiles and aliases, behind plain methods returning records."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- versions ---------------------------------------------------------------------------
    def create_version(
        self,
        name: str,
        *,
        flavor: str,
        artifact_sha256: str,
        artifact_size: int,
        signature: dict[str, Any],
        profile: ReferenceProfile | None,
        flavor_options: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        description: str | None = None,
        lineage: dict[str, Any] | None = None,
    ) -> ModelVersionRecord:
        """Add the next version of ``name`` (creating the model on first use), profile included."""
        for attempt in range(_RETRIES):
            try:
                with self.db.session(write=True) as s:
                    model = s.scalar(sa.select(ModelRow).where(ModelRow.name == name).with_for_update())
                    if model is None:  # two first registrations race here; the loser retries
                        model = ModelRow(name=name, created_at=utcnow())
                        s.add(model)
                        s.flush()
                    latest = s.scalar(
                        sa.select(sa.func.max(ModelVersionRow.version)).where(ModelVersionRow.model_id == model.id)
                    )
                    row = ModelVersionRow(
                        model_id=model.id,
                        version=(latest or 0) + 1,
                        flavor=flavor,
                        artifact_sha256=artifact_sha256,
                        artifact_size=artifact_size,
                        flavor_options=flavor_options or {},
                        signature=signature,
                        metrics=metrics or {},
                        tags=tags or {},
                        description=description,
                        created_at=utcnow(),
                        lineage=lineage,
                    )
                    s.add(row)
                    s.flush()
                    if profile is not None:
                        s.add(ReferenceProfileRow(version_id=row.id, profile=profile))
                    return _version_record(name, row, ())
            except Conflict:
                if attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def add_lineage(self, name: str, version: int, changes: dict[str, Any]) -> ModelVersionRecord:
        """Merge ``changes`` into a version's lineage (its evaluation and rollout come after registration)."""
        with self.db.session(write=True) as s:
            model = _model(s, name)
            row = _version_row(s, model, version)
            row.lineage = {**(row.lineage or {}), **changes}
            s.flush()
            return _version_record(name, row, _aliases_of(s, model.id, version))

    def versions_of_run(self, name: str, run_id: int) -> list[ModelVersionRecord]:
        """The versions of ``name`` a retraining run registered (its resumed step finds its own work)."""
        return [v for v in self.list_versions(name) if (v.lineage or {}).get("run") == run_id]

    def get_version(self, name: str, version: int) -> ModelVersionRecord:
        with self.db.session() as s:
            model = _model(s, name)
            row = _version_row(s, model, version)
            return _version_record(name, row, _aliases_of(s, model.id, version))

    def latest_version(self, name: str) -> int:
        with self.db.session() as s:
            model = _model(s, name)
            latest = _latest(s, model.id)
            if latest is None:
                raise ModelNotFound(name)
            return latest

    def list_versions(self, name: str) -> list[ModelVersionRecord]:
        with self.db.session() as s:
            model = _model(s, name)
            rows = s.scalars(
                sa.select(ModelVersionRow).where(ModelVersionRow.model_id == model.id).order_by(ModelVersionRow.version)
            ).all()
            aliases = _alias_map(s, model.id)
            return [
                _version_record(name, r, tuple(sorted(a for a, v in aliases.items() if v == r.version))) for r in rows
            ]

    def get_profile(self, name: str, version: int) -> ReferenceProfile | None:
        with self.db.session() as s:
            row = _version_row(s, _model(s, name), version)
            stored = s.scalar(sa.select(ReferenceProfileRow.profile).where(ReferenceProfileRow.version_id == row.id))
            return cast(ReferenceProfile | None, stored)  # the JSON registration wrote

    def count_artifact_uses(self, sha256: str) -> int:
        with self.db.session() as s:
            return s.scalar(sa.select(sa.func.count()).where(ModelVersionRow.artifact_sha256 == sha256)) or 0

    def delete_version(self, name: str, version: int, reason: str | None = None) -> ModelVersionRecord:
        """Remove one version; aliases pointing at it are removed and their removal recorded."""
        with self.db.session(write=True) as s:
            model = _model(s, name)
            row = _version_row(s, model, version)
            record = _version_record(name, row, _aliases_of(s, model.id, version))
            for alias in s.scalars(
                sa.select(AliasRow).where(AliasRow.model_id == model.id, AliasRow.version == version)
            ):
                s.add(
                    AliasMoveRow(
                        model_name=name,
                        alias=alias.alias,
                        from_version=version,
                        to_version=None,
                        reason=reason or f"version {version} deleted",
                        at=utcnow(),
                    )
                )
                s.delete(alias)
            s.execute(sa.delete(ReferenceProfileRow).where(ReferenceProfileRow.version_id == row.id))
            s.delete(row)
            return record

    # -- models -----------------------------------------------------------------------------
    def get_model(self, name: str) -> ModelRecord:
        with self.db.session() as s:
            model = _model(s, name)
            return ModelRecord(
                model.name, model.description, model.created_at, _latest(s, model.id), _alias_map(s, model.id)
            )

    def list_models(self) -> list[ModelRecord]:
        with self.db.session() as s:
            latest = dict(
                s.execute(
                    sa.select(ModelVersionRow.model_id, sa.func.max(ModelVersionRow.version)).group_by(
                        ModelVersionRow.model_id
                    )
                ).all()
            )
            aliases: dict[int, dict[str, int]] = {}
            for a in s.scalars(sa.select(AliasRow)):
                aliases.setdefault(a.model_id, {})[a.alias] = a.version
            return [
                ModelRecord(m.name, m.description, m.created_at, latest.get(m.id), aliases.get(m.id, {}))
                for m in s.scalars(sa.select(ModelRow).order_by(ModelRow.name))
            ]

    def delete_model(self, name: str, reason: str | None = None) -> list[ModelVersionRecord]:
        """Remove a model with all its versions; returns what was removed (for artifact clean-up)."""
        with self.db.session(write=True) as s:
            model = _model(s, name)
            rows = s.scalars(sa.select(ModelVersionRow).where(ModelVersionRow.model_id == model.id)).all()
            records = [_version_record(name, r, ()) for r in rows]
            for alias in s.scalars(sa.select(AliasRow).where(AliasRow.model_id == model.id)):
                s.add(
                    AliasMoveRow(
                        model_name=name,
                        alias=alias.alias,
                        from_version=alias.version,
                        to_version=None,
                        reason=reason or "model deleted",
                        at=utcnow(),
                    )
                )
                s.delete(alias)
            ids = [r.id for r in rows]
            if ids:
                s.execute(sa.delete(ReferenceProfileRow).where(ReferenceProfileRow.version_id.in_(ids)))
                s.execute(sa.delete(ModelVersionRow).where(ModelVersionRow.id.in_(ids)))
            s.delete(model)
            return records

    # -- aliases ----------------------------------------------------------------------------
    def resolve_alias(self, name: str, alias: str) -> int:
        with self.db.session() as s:
            model = _model(s, name)
            version = s.scalar(
                sa.select(AliasRow.version).where(AliasRow.model_id == model.id, AliasRow.alias == alias)
            )
            if version is None:
                raise AliasNotFound(name, alias)
            return version

    def set_alias(self, name: str, alias: str, version: int, reason: str | None = None) -> AliasMove:
        """Point ``alias`` at ``version`` and record the move (a no-op move is recorded too)."""
        with self.db.session(write=True) as s:
            model = _model(s, name)
            _version_row(s, model, version)
            row = s.scalar(
                sa.select(AliasRow).where(AliasRow.model_id == model.id, AliasRow.alias == alias).with_for_update()
            )
            previous = row.version if row else None
            now = utcnow()
            if row is None:
                s.add(AliasRow(model_id=model.id, alias=alias, version=version, updated_at=now))
            else:
                row.version, row.updated_at = version, now
            move = AliasMoveRow(
                model_name=name, alias=alias, from_version=previous, to_version=version, reason=reason, at=now
            )
            s.add(move)
            return _move_record(move)

    def remove_alias(self, name: str, alias: str, reason: str | None = None) -> AliasMove:
        with self.db.session(write=True) as s:
            model = _model(s, name)
            row = s.scalar(sa.select(AliasRow).where(AliasRow.model_id == model.id, AliasRow.alias == alias))
            if row is None:
                raise AliasNotFound(name, alias)
            move = AliasMoveRow(
                model_name=name, alias=alias, from_version=row.version, to_version=None, reason=reason, at=utcnow()
            )
            s.add(move)
            s.delete(row)
            return _move_record(move)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        with self.db.session() as s:
            query = sa.select(AliasMoveRow).where(AliasMoveRow.model_name == name)
            if alias is not None:
                query = query.where(AliasMoveRow.alias == alias)
            return [_move_record(m) for m in s.scalars(query.order_by(AliasMoveRow.at, AliasMoveRow.id))]


def _model(s: Session, name: str) -> ModelRow:
    model = s.scalar(sa.select(ModelRow).where(ModelRow.name == name))
    if model is None:
        raise ModelNotFound(name)
    return model


def _latest(s: Session, model_id: int) -> int | None:
    return s.scalar(sa.select(sa.func.max(ModelVersionRow.version)).where(ModelVersionRow.model_id == model_id))


def _version_row(s: Session, model: ModelRow, version: int) -> ModelVersionRow:
    row = s.scalar(
        sa.select(ModelVersionRow).where(ModelVersionRow.model_id == model.id, ModelVersionRow.version == version)
    )
    if row is None:
        raise VersionNotFound(model.name, version, _latest(s, model.id))
    return row


def _alias_map(s: Session, model_id: int) -> dict[str, int]:
    return dict(
        s.execute(
            sa.select(AliasRow.alias, AliasRow.version).where(AliasRow.model_id == model_id).order_by(AliasRow.alias)
        ).all()
    )


def _aliases_of(s: Session, model_id: int, version: int) -> tuple[str, ...]:
    return tuple(a for a, v in _alias_map(s, model_id).items() if v == version)


def _version_record(name: str, r: ModelVersionRow, aliases: tuple[str, ...]) -> ModelVersionRecord:
    return ModelVersionRecord(
        name=name,
        version=r.version,
        flavor=r.flavor,
        artifact_sha256=r.artifact_sha256,
        artifact_size=r.artifact_size,
        flavor_options=dict(r.flavor_options),
        signature=dict(r.signature),
        metrics=dict(r.metrics),
        tags=dict(r.tags),
        description=r.description,
        created_at=r.created_at,
        aliases=aliases,
        lineage=dict(r.lineage) if r.lineage else None,
    )


def _move_record(m: AliasMoveRow) -> AliasMove:
    return AliasMove(m.model_name, m.alias, m.from_version, m.to_version, m.reason, m.at)
