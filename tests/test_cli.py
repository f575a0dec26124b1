"""The ``streamit`` command line through click's CliRunner, against a SQLite file in a temp dir."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from streamit.cli import main
from streamit.config import Settings
from streamit.db import Database, StreamRecord, StreamStatus

CREATE_KEYS = {"id", "slug", "stream_key", "publish_url", "playback_url"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come only from each test's flags, not from the developer's environment."""
    for name in ("DATA_DIR", "DATABASE_URL", "PUBLIC_URL", "RTMP_PORT", "HTTP_PORT", "REDIS_URL", "CONFIG"):
        monkeypatch.delenv(f"STREAMIT_{name}", raising=False)
    monkeypatch.delenv("STREAMIT_RTMP_PUBLIC_URL", raising=False)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def run(data_dir: Path, *args: str, input: str | None = None, **env: str) -> Result:
    return CliRunner().invoke(main, [*args, "--data-dir", str(data_dir)], input=input, env=env or None)


def create(data_dir: Path, title: str, *extra: str) -> dict[str, Any]:
    result = run(data_dir, "streams", "create", title, "--json", *extra)
    assert result.exit_code == 0, result.output
    created: dict[str, Any] = json.loads(result.stdout)
    return created


def stored(data_dir: Path, slug: str) -> StreamRecord | None:
    async def fetch() -> StreamRecord | None:
        db = Database(f"sqlite+aiosqlite:///{data_dir / 'streamit.db'}")
        try:
            return await db.streams.get(slug)
        finally:
            await db.close()

    return asyncio.run(fetch())


def key_works(data_dir: Path, key: str) -> bool:
    async def find() -> bool:
        db = Database(f"sqlite+aiosqlite:///{data_dir / 'streamit.db'}")
        try:
            return await db.streams.find_by_key(key) is not None
        finally:
            await db.close()

    return asyncio.run(find())


def test_create_json_has_exactly_the_contract_keys(data_dir: Path) -> None:
    created = create(data_dir, "Morning Show")
    assert set(created) == CREATE_KEYS
    key = created["stream_key"]
    assert created["slug"] == "morning-show"
    assert created["publish_url"] == f"rtmp://localhost:1935/live/{key}"
    assert created["playback_url"] == "http://localhost:8080/hls/morning-show/index.m3u8"
    assert created["slug"] in created["playback_url"]
    assert key not in created["playback_url"]
    assert key_works(data_dir, key)
    record = stored(data_dir, "morning-show")
    assert record is not None and record.id == created["id"] and record.status is StreamStatus.DRAFT
    assert (data_dir / "streamit.db").is_file()


def test_create_uses_public_url_and_ports(data_dir: Path) -> None:
    result = run(
        data_dir,
        "streams",
        "create",
        "Ports",
        "--json",
        "--public-url",
        "https://tv.example.org/",
        "--rtmp-port",
        "1940",
    )
    created = json.loads(result.stdout)
    assert created["playback_url"] == "https://tv.example.org/hls/ports/index.m3u8"
    assert created["publish_url"].startswith("rtmp://localhost:1940/live/sk_")


def test_create_with_slug_and_description_human_output(data_dir: Path) -> None:
    result = run(data_dir, "streams", "create", "Anything", "--slug", "custom-1", "--description", "about")
    assert result.exit_code == 0, result.output
    assert re.search(r"stream_key:\s+sk_\S{32}", result.stdout)
    assert "custom-1" in result.stdout
    record = stored(data_dir, "custom-1")
    assert record is not None and record.description == "about"


@pytest.mark.parametrize("slug", ["Bad Slug", "api", "-x"])
def test_create_rejects_bad_slug(data_dir: Path, slug: str) -> None:
    result = run(data_dir, "streams", "create", "T", "--slug", slug)
    assert result.exit_code != 0
    assert "slug" in result.output and "Traceback" not in result.output


def test_create_rejects_taken_slug_and_empty_title(data_dir: Path) -> None:
    create(data_dir, "One", "--slug", "taken")
    taken = run(data_dir, "streams", "create", "Two", "--slug", "taken")
    assert taken.exit_code == 1 and "already in use" in taken.output
    empty = run(data_dir, "streams", "create", "  ")
    assert empty.exit_code == 2 and "title" in empty.output


def test_list_and_show(data_dir: Path) -> None:
    first = create(data_dir, "First")
    second = create(data_dir, "Second")
    listing = run(data_dir, "streams", "list")
    assert listing.exit_code == 0
    lines = listing.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["second", "first"]
    assert "DRAFT" in lines[0]
    as_json = json.loads(run(data_dir, "streams", "list", "--json").stdout)
    assert [s["slug"] for s in as_json] == ["second", "first"]
    assert json.loads(run(data_dir, "streams", "list", "--status", "live", "--json").stdout) == []

    shown = json.loads(run(data_dir, "streams", "show", "first", "--json").stdout)
    assert shown["id"] == first["id"] and shown["status"] == "DRAFT" and shown["playback"]["hls"] is None
    human = run(data_dir, "streams", "show", "second")
    assert human.exit_code == 0 and second["id"] in human.stdout
    for output in (listing.stdout, human.stdout, json.dumps(as_json), json.dumps(shown)):
        assert first["stream_key"] not in output and second["stream_key"] not in output


def test_list_empty_and_bad_status(data_dir: Path) -> None:
    assert run(data_dir, "streams", "list").stdout.strip() == "no streams"
    bad = run(data_dir, "streams", "list", "--status", "ONAIR")
    assert bad.exit_code == 2


@pytest.mark.parametrize(
    "command", [["show", "ghost"], ["rotate-key", "ghost"], ["delete", "ghost", "--yes"]]
)
def test_unknown_slug_is_a_clear_error(data_dir: Path, command: list[str]) -> None:
    result = run(data_dir, "streams", *command)
    assert result.exit_code == 1
    assert "no stream with slug 'ghost'" in result.output
    assert "Traceback" not in result.output


def test_rotate_key_invalidates_old_key(data_dir: Path) -> None:
    created = create(data_dir, "Rotate")
    result = run(data_dir, "streams", "rotate-key", "rotate", "--json")
    assert result.exit_code == 0, result.output
    rotated = json.loads(result.stdout)
    assert rotated["slug"] == "rotate"
    assert rotated["stream_key"] != created["stream_key"]
    assert rotated["publish_url"].endswith("/" + rotated["stream_key"])
    assert not key_works(data_dir, created["stream_key"])
    assert key_works(data_dir, rotated["stream_key"])
    human = run(data_dir, "streams", "rotate-key", "rotate")
    assert human.exit_code == 0 and "stream_key:" in human.stdout


def test_delete_asks_unless_yes(data_dir: Path) -> None:
    create(data_dir, "Doomed")
    declined = run(data_dir, "streams", "delete", "doomed", input="n\n")
    assert declined.exit_code == 1 and "Aborted" in declined.output
    assert stored(data_dir, "doomed") is not None
    confirmed = run(data_dir, "streams", "delete", "doomed", input="y\n")
    assert confirmed.exit_code == 0
    assert stored(data_dir, "doomed") is None
    create(data_dir, "Doomed")
    assert run(data_dir, "streams", "delete", "doomed", "--yes").exit_code == 0
    assert stored(data_dir, "doomed") is None


def test_db_upgrade_creates_database(data_dir: Path) -> None:
    result = run(data_dir, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert (data_dir / "streamit.db").is_file()
    assert "up to date" in result.stdout


def test_database_url_flag_and_unreachable_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'elsewhere' / 'x.db'}"
    result = CliRunner().invoke(main, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "elsewhere" / "x.db").is_file()
    down = CliRunner().invoke(
        main, ["streams", "list", "--database-url", "postgresql+asyncpg://bob:hunter2@127.0.0.1:1/x"]
    )
    assert down.exit_code == 1
    assert "cannot open database" in down.output
    assert "hunter2" not in down.output and "Traceback" not in down.output


def test_environment_and_config_file(tmp_path: Path) -> None:
    env_dir = tmp_path / "from-env"
    result = CliRunner().invoke(
        main, ["streams", "create", "Env", "--json"], env={"STREAMIT_DATA_DIR": str(env_dir)}
    )
    assert result.exit_code == 0, result.output
    assert (env_dir / "streamit.db").is_file()

    config = tmp_path / "streamit.toml"
    file_dir = tmp_path / "from-file"
    config.write_text(f'[streamit]\ndata_dir = "{file_dir}"\npublic_url = "https://cfg.example"\n')
    result = CliRunner().invoke(main, ["streams", "create", "Cfg", "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["playback_url"] == "https://cfg.example/hls/cfg/index.m3u8"
    assert (file_dir / "streamit.db").is_file()

    broken = tmp_path / "broken.toml"
    broken.write_text("this is = = not toml")
    result = CliRunner().invoke(main, ["db", "upgrade", "--config", str(broken)])
    assert result.exit_code == 1 and "cannot read config file" in result.output


def test_serve_runs_the_app_with_settings(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    seen: list[Settings] = []

    async def fake_serve(settings: Settings) -> None:
        seen.append(settings)

    # The test checks the CLI's hand-off, not the server it starts (the interop tests run that).
    monkeypatch.setattr("streamit.app.serve", fake_serve)
    result = run(data_dir, "serve", "--http-port", "8181", "--rtmp-port", "1999")
    assert result.exit_code == 0, result.output
    assert len(seen) == 1
    assert seen[0].http_port == 8181 and seen[0].rtmp_port == 1999 and seen[0].data_dir == data_dir


def test_every_command_takes_the_common_flags() -> None:
    flags = {
        "--data-dir",
        "--database-url",
        "--public-url",
        "--rtmp-port",
        "--http-port",
        "--redis-url",
        "--config",
    }
    for path in (
        ["serve"],
        ["streams", "create"],
        ["streams", "list"],
        ["streams", "show"],
        ["streams", "rotate-key"],
        ["streams", "delete"],
        ["users", "create"],
        ["users", "list"],
        ["users", "delete"],
        ["users", "set-password"],
        ["db", "upgrade"],
    ):
        result = CliRunner().invoke(main, [*path, "--help"])
        assert result.exit_code == 0, result.output
        for flag in flags:
            assert flag in result.stdout, (path, flag)


def test_tokens_create_list_revoke(data_dir: Path) -> None:
    created = run(data_dir, "tokens", "create", "--name", "ci", "--json")
    assert created.exit_code == 0, created.output
    body = json.loads(created.stdout)
    assert set(body) == {"id", "name", "token"} and body["name"] == "ci"
    token = body["token"]
    assert re.fullmatch(r"st_[A-Za-z0-9_-]{43}", token)
    assert token.encode() not in (data_dir / "streamit.db").read_bytes()

    async def verify() -> bool:
        db = Database(f"sqlite+aiosqlite:///{data_dir / 'streamit.db'}")
        try:
            return await db.tokens.verify(token) is not None
        finally:
            await db.close()

    assert asyncio.run(verify())
    plain = run(data_dir, "tokens", "create", "--name", "studio")
    assert plain.exit_code == 0 and "st_" in plain.stdout and "shown only now" in plain.stdout
    duplicate = run(data_dir, "tokens", "create", "--name", "ci")
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output
    listed = json.loads(run(data_dir, "tokens", "list", "--json").stdout)
    assert [t["name"] for t in listed] == ["ci", "studio"]
    assert token not in run(data_dir, "tokens", "list").stdout
    assert run(data_dir, "tokens", "revoke", "ci").exit_code == 0
    assert not asyncio.run(verify())
    studio_id = listed[1]["id"]
    assert run(data_dir, "tokens", "revoke", studio_id).exit_code == 0
    missing = run(data_dir, "tokens", "revoke", "ci")
    assert missing.exit_code != 0 and "no token" in missing.output
    assert run(data_dir, "tokens", "list").stdout.strip() == "no tokens"


def test_cli_created_keys_are_revealable_with_the_data_dir_secret(data_dir: Path) -> None:
    created = create(data_dir, "Reveal")
    secret_file = data_dir / "secret.key"
    assert secret_file.is_file() and (secret_file.stat().st_mode & 0o777) == 0o600

    async def reveal() -> str | None:
        db = Database.from_settings(Settings(data_dir=data_dir))
        try:
            return await db.streams.reveal_key(created["slug"])
        finally:
            await db.close()

    assert asyncio.run(reveal()) == created["stream_key"]


def _authenticate(data_dir: Path, username: str, password: str) -> bool:
    async def check() -> bool:
        db = Database(f"sqlite+aiosqlite:///{data_dir / 'streamit.db'}")
        try:
            return await db.users.authenticate(username, password) is not None
        finally:
            await db.close()

    return asyncio.run(check())


def test_users_create_list_set_password_delete(data_dir: Path) -> None:
    created = run(data_dir, "users", "create", "Admin", "--admin", "--password-stdin", input="s3cret pass\n")
    assert created.exit_code == 0, created.output
    assert "created admin admin" in created.stdout
    assert b"s3cret pass" not in (data_dir / "streamit.db").read_bytes()
    assert _authenticate(data_dir, "admin", "s3cret pass")
    plain = run(data_dir, "users", "create", "bob", "--password-stdin", input="bobs password\n")
    assert plain.exit_code == 0 and "created user bob" in plain.stdout
    duplicate = run(data_dir, "users", "create", "BOB", "--password-stdin", input="whatever123\n")
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output
    short = run(data_dir, "users", "create", "carol", "--password-stdin", input="short\n")
    assert short.exit_code != 0 and "at least 8" in short.output
    listed = json.loads(run(data_dir, "users", "list", "--json").stdout)
    assert [(u["username"], u["is_admin"]) for u in listed] == [("admin", True), ("bob", False)]
    assert listed[0]["last_login_at"] is not None and listed[1]["last_login_at"] is None
    text_list = run(data_dir, "users", "list").stdout
    assert "admin" in text_list and "bob" in text_list and "password" not in text_list

    changed = run(data_dir, "users", "set-password", "bob", "--password-stdin", input="new password\n")
    assert changed.exit_code == 0, changed.output
    assert _authenticate(data_dir, "bob", "new password")
    assert not _authenticate(data_dir, "bob", "bobs password")
    missing = run(data_dir, "users", "set-password", "nobody", "--password-stdin", input="new password\n")
    assert missing.exit_code != 0 and "no user" in missing.output

    assert run(data_dir, "users", "delete", "bob", input="n\n").exit_code != 0
    assert run(data_dir, "users", "delete", "bob", "--yes").exit_code == 0
    assert not _authenticate(data_dir, "bob", "new password")
    gone = run(data_dir, "users", "delete", "bob", "--yes")
    assert gone.exit_code != 0 and "no user" in gone.output
    assert [u["username"] for u in json.loads(run(data_dir, "users", "list", "--json").stdout)] == ["admin"]


def test_users_create_prompts_hidden_with_confirmation(data_dir: Path) -> None:
    mismatch = run(
        data_dir, "users", "create", "dave", input="first pass\nsecond pass\nfirst pass\nfirst pass\n"
    )
    assert mismatch.exit_code == 0, mismatch.output
    assert "do not match" in mismatch.output
    assert "first pass" not in mismatch.output  # hidden input is not echoed
    assert _authenticate(data_dir, "dave", "first pass")
    assert run(data_dir, "users", "list").stdout.startswith("dave")
