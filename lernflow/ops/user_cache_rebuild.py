"""``lernflow user-cache rebuild``: write every user's cache hash from the Cassandra user tables.

The equivalent of Sunbird's bulk user-cache indexer, for users who never produced an AUDIT
event (or after a Redis loss). It walks ``sunbird.user`` in token order, one page at a time:

1. ``SELECT token(id), … FROM user WHERE token(id) > ? LIMIT page`` — the page ends at token T;
2. the same token range of ``user_organisation`` and ``user_declarations`` (their partition
   key is the user id, so the range holds exactly this page's users' rows) — two range scans,
   not one query per user;
3. organisations and locations by id, cached for the run;
4. the same field mapping and write as the flow (``rules.plan`` with the registered-user path,
   one atomic Lua call per user, pipelined per page), plus ``usersignintype`` as the indexer
   sets it (``Self-Signed-In`` for users of the custodian org, else ``Validated``).

After every page the last token and the count are saved to a state file, so an interrupted
rebuild resumes where it stopped (``--restart`` starts over). Progress is the fraction of the
token ring covered, so the ETA needs no ``count(*)``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lernflow.config import Settings
from lernflow.flows.user_cache_updater import rules
from lernflow.flows.user_cache_updater.profiles import CassandraUserSource, rules_config
from lernflow.flows.user_cache_updater.store import RedisUserCache
from lernflow.kernel.retry import is_transient, retry
from lernflow.sources import user_rows
from lernflow.sources.sunbird_users import USER_COLUMNS

logger = logging.getLogger(__name__)

FLOW = "user-cache-rebuild"
MIN_TOKEN = -(2**63)
MAX_TOKEN = 2**63 - 1


@dataclass
class RebuildResult:
    """What a rebuild (or dry run) did."""

    users: int = 0
    changed: int = 0
    seconds: float = 0.0
    diffs: list[str] = field(default_factory=list)
    resumed_from: int | None = None


def state_path(settings: Settings) -> Path:
    """Where the resume position is kept."""
    return settings.run.recovery_dir / settings.topics.env / "user-cache-rebuild.json"


def token_fraction(token: int) -> float:
    """How much of the Murmur3 token ring lies at or below ``token`` (0.0 … 1.0)."""
    return (token - MIN_TOKEN) / (MAX_TOKEN - MIN_TOKEN)


def diff(existing: dict[str, str], after: dict[str, str]) -> list[str]:
    """Human-readable field changes between two hashes."""
    lines = []
    for k in sorted(existing.keys() | after.keys()):
        old, new = existing.get(k), after.get(k)
        if old == new:
            continue
        if old is None:
            lines.append(f"+ {k} = {new!r}")
        elif new is None:
            lines.append(f"- {k} (was {old!r})")
        else:
            lines.append(f"~ {k}: {old!r} -> {new!r}")
    return lines


@dataclass(frozen=True)
class _PendingWrite:
    """A page's Redis write in the background, and the position saved once it completes."""

    done: Future[None]
    token: int
    users: int


@dataclass
class _Walk:
    """One walk over the token ring: what it reads and writes with, and where it stands."""

    session: Any
    stmt: Any
    page: int
    path: Path
    dry_run: bool
    pool: ThreadPoolExecutor
    t0: float
    result: RebuildResult
    after: int  # the last token read
    next_page: Any  # the prefetched page (a driver future)
    pending: _PendingWrite | None = None
    finished: bool = False


class UserCacheRebuild:
    """One rebuild run (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self._s = settings
        self._cfg = rules_config(settings)
        self._source = CassandraUserSource(settings, FLOW, cache_lookups=True)
        self._cas = self._source.executor
        self._writer = RedisUserCache(settings, FLOW)
        ks = settings.cassandra.sunbird_keyspace
        cols = ", ".join(USER_COLUMNS)
        self._q_page = f"SELECT token(id) AS tok, {cols} FROM {ks}.user WHERE token(id) > ? LIMIT ?"
        self._q_orgs = (
            f"SELECT userid, organisationid, isdeleted FROM {ks}.user_organisation "
            "WHERE token(userid) > ? AND token(userid) <= ?"
        )
        self._q_decls = (
            f"SELECT userid, orgid, persona, userinfo FROM {ks}.user_declarations "
            "WHERE token(userid) > ? AND token(userid) <= ?"
        )
        self._custodian = self._source.custodian_org()

    def _writes(self, users: list[dict[str, Any]], after: int, upto: int) -> list[rules.Write]:
        bare = [user_rows.UserRows(u) for u in users]
        wants = [user_rows.needs(r, self._custodian) for r in bare]  # as the flow's source reads
        rows = bare
        if any(w != (False, False) for w in wants):
            orgs_rows, decl_rows = self._range_rows(after, upto)
            orgs_of: dict[str, list[str]] = {}
            for o in orgs_rows:
                if not o.isdeleted:
                    orgs_of.setdefault(o.userid, []).append(o.organisationid)
            decls_of: dict[str, list[dict[str, Any]]] = {}
            for d in decl_rows:
                decls_of.setdefault(d.userid, []).append(d._asdict())
            rows = [
                dataclasses.replace(
                    r,
                    organisation_ids=tuple(orgs_of.get(r.user["id"], ())) if member else (),
                    declarations=tuple(decls_of.get(r.user["id"], ())) if decl else (),
                )
                if decl or member
                else r
                for r, (decl, member) in zip(bare, wants, strict=True)
            ]
        lookups = self._source.lookups(rows)
        return [self._plan(r, lookups) for r in rows]

    def _range_rows(self, after: int, upto: int) -> tuple[list[Any], list[Any]]:
        session = self._cas.session

        def scan() -> tuple[list[Any], list[Any]]:
            fut_o = session.execute_async(self._cas.prepare(self._q_orgs), (after, upto))
            fut_d = session.execute_async(self._cas.prepare(self._q_decls), (after, upto))
            return list(fut_o.result()), list(fut_d.result())

        return retry(scan, self._s.run, "Cassandra user-table range scan")

    def _plan(self, rows: user_rows.UserRows, lookups: user_rows.Lookups) -> rules.Write:
        user = rows.user
        fields = rules.profile_fields(user_rows.response_from_rows(rows, lookups))
        root = user.get("rootorgid")
        signin = (
            self._cfg.self_signin_key if root and root == self._custodian else self._cfg.valid_key
        )
        event = rules.AuditUser(str(user["id"]), "Update", True, {"usersignintype": signin}, None)
        plan = rules.plan(event, rules.Profile(fields), self._cfg)
        assert isinstance(plan, rules.Write)  # a profile always has fields
        return plan

    def one(self, user_id: str, dry_run: bool) -> RebuildResult:
        """Rebuild (or diff) one user's hash."""
        q = f"{self._q_page.split(' WHERE ')[0]} WHERE id=?"
        found = self._cas.execute_many(q, [(user_id,)], "read user")[0]
        if not found:
            msg = f"user {user_id} not found in {self._s.cassandra.sunbird_keyspace}.user"
            raise LookupError(msg)
        tok = int(found[0].tok)
        users = [_user_dict(found[0])]
        return self._apply(self._writes(users, tok - 1, tok), dry_run, RebuildResult())

    def _apply(
        self, writes: list[rules.Write], dry_run: bool, result: RebuildResult
    ) -> RebuildResult:
        result.users += len(writes)
        if dry_run:
            current = self._writer.current([w.key for w in writes])
            for w, existing in zip(writes, current, strict=True):
                lines = diff(existing, rules.apply(existing, w))
                if lines:
                    result.changed += 1
                    if len(result.diffs) < 200:
                        result.diffs.append(w.key)
                        result.diffs.extend("    " + line for line in lines)
        else:
            self._writer.write(writes)
            result.changed += len(writes)
        return result

    def run(
        self,
        dry_run: bool = False,
        restart: bool = False,
        limit: int | None = None,
        progress: Callable[[float, int, float], None] | None = None,
    ) -> RebuildResult:
        """Walk every user; ``progress(fraction, users, seconds)`` after each page."""
        path = state_path(self._s)
        result = RebuildResult()
        after = MIN_TOKEN
        if not dry_run and not restart and path.exists():
            after = self._resume(path, result)
        page = self._s.user_cache.rebuild_page_size
        stmt = self._cas.prepare(self._q_page)
        session = self._cas.session
        t0 = time.perf_counter()
        # The next page is read while this one is mapped, and a page's Redis write runs in the
        # background while the next is mapped; the resume position is saved only once the
        # write that covers it has completed.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="user-cache-write")
        walk = _Walk(
            session=session, stmt=stmt, page=page, path=path, dry_run=dry_run, pool=pool,
            t0=t0, result=result, after=after,
            next_page=session.execute_async(stmt, (after, page)),
        )  # fmt: skip
        try:
            self._walk(walk, limit, progress)
            if walk.pending is not None:
                self._saved(walk.pending, path)
        finally:
            pool.shutdown(wait=True)
        result.seconds = time.perf_counter() - t0
        if not dry_run and walk.finished:
            path.unlink(missing_ok=True)
        return result

    @staticmethod
    def _resume(path: Path, result: RebuildResult) -> int:
        """The token saved by an interrupted rebuild; ``result`` counts the users it did."""
        saved = json.loads(path.read_text())
        after, result.users = int(saved["token"]), int(saved["users"])
        result.changed = result.users
        result.resumed_from = after
        logger.info(
            "resuming the user-cache rebuild after token %d (%d users done)",
            after,
            result.users,
        )
        return after

    def _walk(
        self,
        walk: _Walk,
        limit: int | None,
        progress: Callable[[float, int, float], None] | None,
    ) -> None:
        """Page after page until the ring ends (``walk.finished``) or ``limit`` users are done."""
        result = walk.result
        while limit is None or result.users < limit:
            found = self._page_result(walk.next_page, walk.stmt, walk.after, walk.page)
            if not found:
                walk.finished = True
                return
            self._take_page(walk, found)
            if progress is not None:
                progress(token_fraction(walk.after), result.users, time.perf_counter() - walk.t0)
            if len(found) < walk.page:
                walk.finished = True
                return

    def _take_page(self, walk: _Walk, found: list[Any]) -> None:
        """Prefetch the next page (if this one is full), map this one, then diff it (dry run)
        or hand its write to the pool once the previous page's write is saved."""
        upto = int(found[-1].tok)
        if len(found) == walk.page:
            walk.next_page = walk.session.execute_async(walk.stmt, (upto, walk.page))
        writes = self._writes([_user_dict(r) for r in found], walk.after, upto)
        walk.after = upto
        result = walk.result
        if walk.dry_run:
            self._apply(writes, True, result)
            return
        if walk.pending is not None:
            self._saved(walk.pending, walk.path)
        result.users += len(writes)
        result.changed = result.users
        done = walk.pool.submit(self._writer.write, writes)
        walk.pending = _PendingWrite(done, walk.after, result.users)

    @staticmethod
    def _saved(pending: _PendingWrite, path: Path) -> None:
        """Wait for a page's write, then record the position it covers."""
        pending.done.result()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"token": pending.token, "users": pending.users}))

    def _page_result(self, future: Any, stmt: Any, after: int, size: int) -> list[Any]:
        """The rows of a prefetched page; a transient failure is retried synchronously."""
        try:
            return list(future.result())
        except Exception as exc:
            if not is_transient(exc):
                raise
            return retry(
                functools.partial(self._page, stmt, after, size), self._s.run, "Cassandra user page"
            )

    def _page(self, stmt: Any, after: int, size: int) -> list[Any]:
        return list(self._cas.session.execute(stmt, (after, size)))

    def close(self) -> None:
        self._writer.close()
        self._source.close()


def _user_dict(row: Any) -> dict[str, Any]:
    d: dict[str, Any] = row._asdict()
    d.pop("tok", None)
    return d
