"""The ``streamit`` command line: ``serve``, ``origin``, ``edge``, ``discovery``, ``streams …``, ``tokens …``,
``users …`` and ``db``.

Every command takes the same settings flags (``--data-dir``, ``--database-url`` …); unset flags fall back
to ``STREAMIT_<FLAG>`` environment variables, then to ``--config FILE``, then to defaults.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from streamit.api.schemas import playback_url, stream_out
from streamit.config import Settings, load_settings
from streamit.db import Database, StreamRecord, StreamStatus
from streamit.errors import InvalidInput, StreamitError

T = TypeVar("T")
CommandFunc = Callable[..., Any]


def _settings_options(func: CommandFunc) -> CommandFunc:
    """Add the common settings flags to a command and hand it a ``settings`` argument instead."""

    @click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="STREAMIT_CONFIG",
        help="TOML settings file.",
    )
    @click.option("--redis-url", help="Redis URL for cluster discovery.")
    @click.option("--http-port", type=click.IntRange(0, 65535), help="HTTP port (default 8080).")
    @click.option("--rtmp-port", type=click.IntRange(0, 65535), help="RTMP port (default 1935).")
    @click.option("--public-url", help="Base URL viewers use, e.g. https://live.example.com.")
    @click.option("--database-url", help="SQLAlchemy URL (default: SQLite in the data directory).")
    @click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Data directory.")
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        config_file: Path | None,
        redis_url: str | None,
        http_port: int | None,
        rtmp_port: int | None,
        public_url: str | None,
        database_url: str | None,
        data_dir: Path | None,
        **kwargs: Any,
    ) -> Any:
        try:
            settings = load_settings(
                config_file,
                redis_url=redis_url,
                http_port=http_port,
                rtmp_port=rtmp_port,
                public_url=public_url,
                database_url=database_url,
                data_dir=data_dir,
            )
        except StreamitError as exc:
            raise click.ClickException(str(exc)) from exc
        return func(*args, settings=settings, **kwargs)

    return wrapper


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coroutine)
    except InvalidInput as exc:
        raise click.BadParameter(str(exc)) from exc
    except StreamitError as exc:
        raise click.ClickException(str(exc)) from exc


async def _with_database(settings: Settings, action: Callable[[Database], Awaitable[T]]) -> T:
    """Open the database, migrate it (zero set-up), run ``action``, close it."""
    db = Database.from_settings(settings)
    try:
        await db.upgrade()
        return await action(db)
    finally:
        await db.close()


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def _print_rows(
    rows: list[dict[str, Any]], *, as_json: bool, empty: str, line: Callable[[dict[str, Any]], str]
) -> None:
    """``rows`` as JSON, or one ``line`` each (``empty`` when there are none)."""
    if as_json:
        _echo_json(rows)
    elif not rows:
        click.echo(empty)
    else:
        for row in rows:
            click.echo(line(row))


def _public_json(record: StreamRecord, settings: Settings) -> dict[str, Any]:
    return stream_out(record, settings).model_dump(mode="json")


def _unknown(slug: str) -> click.ClickException:
    return click.ClickException(f"no stream with slug {slug!r}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="streamit")
def main() -> None:
    """Streamit: live video over RTMP in, HLS out."""


@main.command()
@_settings_options
def serve(settings: Settings) -> None:
    """Run RTMP ingest, HLS origin and the API in one process."""
    from streamit.app import event_loop_factory
    from streamit.app import serve as serve_all

    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(serve_all(settings))
    except KeyboardInterrupt:
        pass
    except StreamitError as exc:
        raise click.ClickException(str(exc)) from exc


def _cluster_options(func: CommandFunc) -> CommandFunc:
    """Add ``--cluster-secret`` (falling back to the settings) and the hidden ``--redis-prefix``."""

    @click.option(
        "--redis-prefix",
        default="streamit:",
        show_default=True,
        hidden=True,
        help="Key prefix in Redis; every node of one cluster must use the same.",
    )
    @click.option(
        "--cluster-secret",
        help="Shared secret that signs registry entries (default: STREAMIT_CLUSTER_SECRET).",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, cluster_secret: str | None, **kwargs: Any) -> Any:
        settings: Settings = kwargs["settings"]
        secret = cluster_secret or settings.cluster_secret
        if not secret:
            raise click.UsageError("--cluster-secret (or STREAMIT_CLUSTER_SECRET) is required")
        if not settings.redis_url:
            raise click.UsageError("--redis-url (or STREAMIT_REDIS_URL) is required")
        return func(*args, cluster_secret=secret, **kwargs)

    return wrapper


def _run_role(coroutine: Coroutine[Any, Any, None]) -> None:
    from streamit.app import event_loop_factory

    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(coroutine)
    except KeyboardInterrupt:
        pass
    except StreamitError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option(
    "--discovery-ttl",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    hidden=True,
    help="Seconds a registry entry outlives its last heartbeat.",
)
@_settings_options
@_cluster_options
def origin(settings: Settings, cluster_secret: str, redis_prefix: str, discovery_ttl: float) -> None:
    """Run ingest, packaging and HLS serving, and announce live streams to edges through Redis."""
    from streamit.roles import run_origin

    if not settings.public_url:
        raise click.UsageError("--public-url is required: the URL edges reach this origin at")
    _run_role(run_origin(settings, cluster_secret, redis_prefix=redis_prefix, discovery_ttl=discovery_ttl))


@main.command()
@click.option(
    "--discovery-ttl",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    hidden=True,
    help="The origins' registry TTL: how long a stream may go without a heartbeat.",
)
@click.option(
    "--playback-url",
    help="Base URL players fetch /hls/ from: the edges or their load balancer (default: --public-url).",
)
@_settings_options
@_cluster_options
def api(
    settings: Settings, cluster_secret: str, redis_prefix: str, playback_url: str | None, discovery_ttl: float
) -> None:
    """Serve the API and web pages; streams whose origin stops heartbeating become ENDED."""
    from streamit.roles import run_api

    if playback_url:
        settings = settings.model_copy(update={"playback_url": playback_url})
    _run_role(run_api(settings, cluster_secret, redis_prefix=redis_prefix, discovery_ttl=discovery_ttl))


@main.command()
@_settings_options
@_cluster_options
def edge(settings: Settings, cluster_secret: str, redis_prefix: str) -> None:
    """Deliver HLS from the origins in the Redis registry, through a shared cache."""
    from streamit.roles import run_edge

    _run_role(run_edge(settings, cluster_secret, redis_prefix=redis_prefix))


@main.command()
@click.option(
    "--hls-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder another packager (nginx-rtmp) writes HLS playlists into.",
)
@click.option("--origin-url", required=True, help="Base URL under which an HTTP server serves --hls-dir.")
@click.option("--node", help="Name that owns the registry entries (default: the node id).")
@_settings_options
@_cluster_options
def discovery(
    hls_dir: Path,
    origin_url: str,
    node: str | None,
    settings: Settings,
    cluster_secret: str,
    redis_prefix: str,
) -> None:
    """Register the streams whose HLS playlists appear in a folder, for edges to find."""
    from streamit.roles import run_discovery

    _run_role(
        run_discovery(settings, hls_dir, origin_url, cluster_secret, node=node, redis_prefix=redis_prefix)
    )


@main.group()
def streams() -> None:
    """Create and manage streams."""


@streams.command("create")
@click.argument("title")
@click.option("--slug", help="URL name (default: derived from the title).")
@click.option("--description", default="", help="Longer description.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_settings_options
def create_stream(title: str, slug: str | None, description: str, as_json: bool, settings: Settings) -> None:
    """Create a stream and print its key and URLs (the key is shown only here and by rotate-key)."""
    record, key = _run(
        _with_database(settings, lambda db: db.streams.create(title, slug=slug, description=description))
    )
    result = {
        "id": record.id,
        "slug": record.slug,
        "stream_key": key,
        "publish_url": f"{settings.resolved_rtmp_url}/{key}",
        "playback_url": playback_url(settings, record.slug),
    }
    if as_json:
        _echo_json(result)
        return
    click.echo(f"Created stream {record.title!r}")
    for name, value in result.items():
        click.echo(f"  {name + ':':<14}{value}")
    click.echo("Keep the stream key secret: anyone who has it can broadcast on this stream.")


@streams.command("list")
@click.option(
    "--status", type=click.Choice([s.value for s in StreamStatus], case_sensitive=False), help="Filter."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_settings_options
def list_streams(status: str | None, as_json: bool, settings: Settings) -> None:
    """List streams, newest first."""
    wanted = None if status is None else StreamStatus(status.upper())
    records = _run(_with_database(settings, lambda db: db.streams.list(wanted)))
    if as_json:
        _echo_json([_public_json(record, settings) for record in records])
        return
    if not records:
        click.echo("no streams")
        return
    width = max(len(record.slug) for record in records)
    for record in records:
        click.echo(f"{record.slug:<{width}}  {record.status.value:<5}  {record.title}")


@streams.command("show")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_settings_options
def show_stream(slug: str, as_json: bool, settings: Settings) -> None:
    """Show one stream (never its key)."""
    record = _run(_with_database(settings, lambda db: db.streams.get(slug)))
    if record is None:
        raise _unknown(slug)
    data = _public_json(record, settings)
    if as_json:
        _echo_json(data)
        return
    media = data["media"]
    lines = {
        "id": record.id,
        "slug": record.slug,
        "title": record.title,
        "description": record.description,
        "status": record.status.value,
        "started_at": record.started_at.isoformat() if record.started_at else "-",
        "ended_at": record.ended_at.isoformat() if record.ended_at else "-",
        "playback": playback_url(settings, record.slug),
        "video": ", ".join(f"{k}={v}" for k, v in media["video"].items()) if media["video"] else "-",
        "audio": ", ".join(f"{k}={v}" for k, v in media["audio"].items()) if media["audio"] else "-",
        "bitrate_kbps": record.bitrate_kbps if record.bitrate_kbps is not None else "-",
        "viewers": record.viewers,
    }
    for name, value in lines.items():
        click.echo(f"{name + ':':<14}{value}")


@streams.command("rotate-key")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_settings_options
def rotate_key(slug: str, as_json: bool, settings: Settings) -> None:
    """Replace a stream's key; the old key stops working immediately."""

    async def rotate(db: Database) -> str | None:
        if await db.streams.get(slug) is None:
            return None
        return await db.streams.rotate_key(slug)

    key = _run(_with_database(settings, rotate))
    if key is None:
        raise _unknown(slug)
    result = {"slug": slug, "stream_key": key, "publish_url": f"{settings.resolved_rtmp_url}/{key}"}
    if as_json:
        _echo_json(result)
        return
    click.echo(f"stream_key:   {key}")
    click.echo(f"publish_url:  {result['publish_url']}")


@streams.command("delete")
@click.argument("slug")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_settings_options
def delete_stream(slug: str, yes: bool, settings: Settings) -> None:
    """Delete a stream from the catalogue."""
    if not yes:
        click.confirm(f"Delete stream {slug!r}?", abort=True)
    deleted = _run(_with_database(settings, lambda db: db.streams.delete(slug)))
    if not deleted:
        raise _unknown(slug)
    click.echo(f"deleted {slug}")


@main.group()
def tokens() -> None:
    """Create and revoke API tokens (owner endpoints need one)."""


@tokens.command("create")
@click.option("--name", required=True, help="What the token is for, e.g. 'ci' or 'studio'.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_settings_options
def create_token(name: str, as_json: bool, settings: Settings) -> None:
    """Create a token and print it; it is shown only this once (only its hash is stored)."""
    record, token = _run(_with_database(settings, lambda db: db.tokens.create(name)))
    if as_json:
        _echo_json({"id": record.id, "name": record.name, "token": token})
        return
    click.echo(f"Created token {record.name!r} ({record.id})")
    click.echo(f"  token: {token}")
    click.echo("It is shown only now: send it as 'Authorization: Bearer <token>'.")


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_settings_options
def list_tokens(as_json: bool, settings: Settings) -> None:
    """List tokens (names, ids and dates; never the tokens themselves)."""
    records = _run(_with_database(settings, lambda db: db.tokens.list()))
    rows = [
        {
            "id": r.id,
            "name": r.name,
            "created_at": r.created_at.isoformat(),
            "last_used_at": r.last_used_at.isoformat() if r.last_used_at else None,
        }
        for r in records
    ]
    width = max((len(r.name) for r in records), default=0)
    _print_rows(
        rows,
        as_json=as_json,
        empty="no tokens",
        line=lambda row: (
            f"{row['name']:<{width}}  {row['id']}  created {row['created_at']}"
            f"  used {row['last_used_at'] or '-'}"
        ),
    )


@tokens.command("revoke")
@click.argument("name_or_id")
@_settings_options
def revoke_token(name_or_id: str, settings: Settings) -> None:
    """Revoke the token with this name or id; it stops working at once."""
    if not _run(_with_database(settings, lambda db: db.tokens.revoke(name_or_id))):
        raise click.ClickException(f"no token named or with id {name_or_id!r}")
    click.echo(f"revoked {name_or_id}")


@main.group()
def users() -> None:
    """Manage studio users (sign-in at /studio); create the first admin with ``users create NAME --admin``."""


def _password_options(func: CommandFunc) -> CommandFunc:
    """Add ``--password-stdin`` and hand the command a ``password`` read from stdin or a hidden prompt."""

    @click.option(
        "--password-stdin",
        is_flag=True,
        help="Read the password from the first line of standard input (for scripts) instead of prompting.",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, password_stdin: bool, **kwargs: Any) -> Any:
        if password_stdin:
            line: str = sys.stdin.readline()
            password = line.rstrip("\r\n")
        else:
            password = str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
        return func(*args, password=password, **kwargs)

    return wrapper


@users.command("create")
@click.argument("username")
@click.option("--admin", is_flag=True, help="May see and manage every stream and is shown as admin.")
@_password_options
@_settings_options
def create_user(username: str, admin: bool, password: str, settings: Settings) -> None:
    """Create a studio user (password: at least 8 characters, stored only as an argon2 hash)."""
    record = _run(_with_database(settings, lambda db: db.users.create(username, password, is_admin=admin)))
    role = "admin" if record.is_admin else "user"
    click.echo(f"created {role} {record.username}")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_settings_options
def list_users(as_json: bool, settings: Settings) -> None:
    """List studio users."""
    records = _run(_with_database(settings, lambda db: db.users.list()))
    rows = [
        {
            "id": r.id,
            "username": r.username,
            "is_admin": r.is_admin,
            "created_at": r.created_at.isoformat(),
            "last_login_at": r.last_login_at.isoformat() if r.last_login_at else None,
        }
        for r in records
    ]
    width = max((len(r.username) for r in records), default=0)
    _print_rows(
        rows,
        as_json=as_json,
        empty="no users",
        line=lambda row: (
            f"{row['username']:<{width}}  {'admin' if row['is_admin'] else 'user':<5}"
            f"  last sign-in {row['last_login_at'] or '-'}"
        ),
    )


@users.command("delete")
@click.argument("username")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_settings_options
def delete_user(username: str, yes: bool, settings: Settings) -> None:
    """Delete a user and sign them out; their streams stay (then only admins manage them)."""
    if not yes:
        click.confirm(f"Delete user {username!r}?", abort=True)
    if not _run(_with_database(settings, lambda db: db.users.delete(username))):
        raise click.ClickException(f"no user named {username!r}")
    click.echo(f"deleted {username}")


@users.command("set-password")
@click.argument("username")
@_password_options
@_settings_options
def set_user_password(username: str, password: str, settings: Settings) -> None:
    """Set a user's password; every browser they are signed in with is signed out."""
    if not _run(_with_database(settings, lambda db: db.users.set_password(username, password))):
        raise click.ClickException(f"no user named {username!r}")
    click.echo(f"password changed for {username}")


@main.group("db")
def database() -> None:
    """Database maintenance."""


@database.command("upgrade")
@_settings_options
def upgrade(settings: Settings) -> None:
    """Create or migrate the database schema to the newest version."""

    async def describe(db: Database) -> str:
        return db.display_url

    url = _run(_with_database(settings, describe))
    click.echo(f"database is up to date: {url}")
