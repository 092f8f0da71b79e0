"""``lernflow relation-cache`` and ``lernflow user-cache``: rebuild the Redis caches."""

from __future__ import annotations

import typer

from lernflow.cli.common import console, get_settings, out, report
from lernflow.flows.relation_cache_updater import rules
from lernflow.flows.relation_cache_updater.store import RelationCacheWriter
from lernflow.ops.user_cache_rebuild import RebuildResult, UserCacheRebuild

relation_app = typer.Typer(
    help="The Redis relation cache (course leaf nodes, ancestors).", no_args_is_help=True
)
user_cache_app = typer.Typer(
    help="The Redis user cache (DB 12, user:<id>) the reports and certificates read.",
    no_args_is_help=True,
)


@relation_app.command("rebuild")
def relation_rebuild(
    course: list[str] = typer.Option(..., "--course", help="Collection id (repeatable)."),  # noqa: B008
) -> None:
    """Recompute one course's leafnodes/optionalnodes/ancestors (DB 10) and units (DB 5)
    from its published hierarchy in hierarchy_store.content_hierarchy."""

    writer = RelationCacheWriter(get_settings())
    try:
        texts = writer.hierarchies(list(course))
        for cid in course:
            tree = rules.parse_hierarchy(texts[cid])
            if tree is None:
                console.print(f"[red]{cid}: no published hierarchy[/red]")
                raise typer.Exit(1)
            writes = rules.plan(cid, tree)
            writer.write(writes)
            report(
                f"{cid}: {len(writes.sets)} relation keys, {len(writes.strings)} unit keys written"
            )
    finally:
        writer.close()


def _print_rebuild_diffs(lines: list[str]) -> None:
    for line in lines:
        out.print(line, markup=False, highlight=False)


def _rebuild_users(job: UserCacheRebuild, users: list[str], dry_run: bool) -> None:
    """Rebuild the given users one by one (no state file); exit 1 for an unknown user."""
    for uid in users:
        try:
            res = job.one(uid, dry_run)
        except LookupError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        _print_rebuild_diffs(res.diffs)
        verb = "would change" if dry_run and res.changed else "unchanged" if dry_run else "written"
        report(f"user:{uid} {verb}")


def _rebuild_all(
    job: UserCacheRebuild, dry_run: bool, restart: bool, limit: int | None
) -> RebuildResult:
    """Rebuild every user with a progress bar (resumable unless ``restart``)."""
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[users]:>12,} users  {task.fields[rate]}"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, transient=False,
    ) as bar:  # fmt: skip
        task = bar.add_task("user-cache rebuild", total=1.0, users=0, rate="")

        def show(fraction: float, users: int, seconds: float) -> None:
            rate = f"{users / seconds:,.0f}/s" if seconds > 0 else ""
            bar.update(task, completed=fraction, users=users, rate=rate)

        res = job.run(dry_run=dry_run, restart=restart, limit=limit, progress=show)
        bar.update(task, completed=1.0 if limit is None else bar.tasks[0].completed)
    return res


@user_cache_app.command("rebuild")
def user_cache_rebuild(
    user: list[str] = typer.Option(  # noqa: B008
        None, "--user", help="Only this user id (repeatable); no state file is kept."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Write nothing; show what would change against Redis."
    ),
    restart: bool = typer.Option(
        False, "--restart", help="Ignore the saved position of an interrupted rebuild."
    ),
    limit: int = typer.Option(None, "--limit", help="Stop after about this many users."),
) -> None:
    """Write every user's cache hash from the Cassandra user tables (Sunbird's bulk user-cache
    indexer): token-range pages, pipelined writes, resumable after an interruption.

    The fields are the ones user-cache-updater writes (names, encrypted email/phone, root org
    and org name, state/district/block/cluster, school name and UDISE code, user types,
    framework) plus usersignintype as the indexer sets it.
    """

    job = UserCacheRebuild(get_settings())
    try:
        if user:
            _rebuild_users(job, user, dry_run)
            return
        res = _rebuild_all(job, dry_run, restart, limit)
        if res.resumed_from is not None:
            report(f"resumed after token {res.resumed_from}")
        if dry_run:
            _print_rebuild_diffs(res.diffs)
            report(f"dry run: {res.changed:,} of {res.users:,} users would change")
        else:
            rate = res.users / res.seconds if res.seconds else 0.0
            report(f"{res.users:,} users written in {res.seconds:.1f}s ({rate:,.0f} users/s)")
    finally:
        job.close()
