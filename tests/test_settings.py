"""Settings and database URLs: secrecy, libpq translation, environment."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from tortoise import Tortoise
from tortoise.context import TortoiseContext

import todo_app.settings
from todo_app import DatabaseURL, DatabaseURLError, Settings, SSLMode, get_settings, tortoise_config
from todo_app.config import app_config, connection_entry
from todo_app.connection import tortoise_connection
from todo_app.settings import SettingsError

NEON = (
    "postgresql://neondb_owner:npg_S3cr3tPw@ep-cool-darkness-123456.us-east-2.aws.neon.tech"
    "/neondb?sslmode=require&channel_binding=require"
)
NEON_POOLED = NEON.replace("ep-cool-darkness-123456", "ep-cool-darkness-123456-pooler")


def credentials(url: str, **kwargs: object) -> dict[str, object]:
    entry = tortoise_connection(DatabaseURL(url), **kwargs)  # type: ignore[arg-type]
    return dict(entry["credentials"])


def test_password_is_masked_everywhere() -> None:
    url = DatabaseURL(NEON)
    for shown in (repr(url), str(url), f"{url}", url.masked, repr(Settings(database_url=NEON))):
        assert "npg_S3cr3tPw" not in shown
        assert "neondb_owner:***@" in shown
    assert url.reveal() == NEON
    assert url.password == "npg_S3cr3tPw"


def test_password_in_query_is_masked() -> None:
    url = DatabaseURL("postgresql://u@h/db?password=hunter2&sslmode=disable")
    assert "hunter2" not in repr(url)
    assert url.password == "hunter2"
    assert credentials(url.reveal())["password"] is not None


@given(
    secret=st.text(alphabet=st.characters(codec="ascii", exclude_characters="@\x00"), min_size=1)
)
def test_masking_never_shows_any_password(secret: str) -> None:
    password = f"pw-{secret}-pw"
    raw = f"postgresql://user:{password}@db.example.com:5432/app?sslmode=require"
    try:
        url = DatabaseURL(raw)
    except DatabaseURLError as exc:
        assert password not in str(exc)
        return
    assert password not in repr(url)
    assert password not in str(url)


def test_errors_never_contain_the_password() -> None:
    for bad in (
        "postgresql://u:topsecret@h:notaport/db",
        "postgresql://u:topsecret@h/db?sslmode=sometimes",
        "postgresql://u:topsecret@h/db?unknown=1",
        "postgresql://u:topsecret@h/db?connect_timeout=soon",
        "postgresql://u:topsecret@h/db?channel_binding=maybe",
        "postgresql://u:topsecret@h/db?hostaddr=10.0.0.1",
        "postgresql://u:topsecret@h/db?target_session_attrs=master",
        "postgresql://u:topsecret@h:0/db",
        "postgresql://u:topsecret@h/db?sslrootcert=system&sslmode=require",
        "mysql://u:topsecret@h/db",
    ):
        with pytest.raises(DatabaseURLError) as raised:
            credentials(bad)
        assert "topsecret" not in str(raised.value)
        assert "***" in str(raised.value)


def test_settings_errors_never_contain_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://u:topsecret@h/db")
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert "topsecret" not in str(raised.value)


def test_neon_url_works_as_pasted() -> None:
    creds = credentials(NEON)
    assert creds["host"] == "ep-cool-darkness-123456.us-east-2.aws.neon.tech"
    assert creds["port"] == 5432
    assert creds["user"] == "neondb_owner"
    assert creds["database"] == "neondb"
    # channel_binding=require: asyncpg cannot bind, so the certificate and the host
    # name are verified against the system's CAs instead (Neon's are public).
    context = creds["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert creds["statement_cache_size"] == 100
    password = creds["password"]
    assert callable(password)
    assert password() == "npg_S3cr3tPw"
    assert "npg" not in repr(password)
    assert "sslmode" not in creds
    assert "channel_binding" not in creds


def test_neon_pooled_url_turns_the_statement_cache_off() -> None:
    assert credentials(NEON_POOLED)["statement_cache_size"] == 0
    assert credentials(NEON + "&pgbouncer=true")["statement_cache_size"] == 0
    assert credentials(NEON_POOLED, statement_cache_size=50)["statement_cache_size"] == 50


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home directory of the test's own: libpq (and asyncpg) look in ~/.postgresql."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("PGSSLMODE", "PGSSLROOTCERT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer", "require"])
def test_sslmode_means_what_libpq_means(mode: str, home: Path) -> None:
    creds = credentials(f"postgresql://u@h/db?sslmode={mode}")
    # asyncpg implements libpq's sslmode semantics for these names (including
    # ~/.postgresql/root.crt and PGSSLROOTCERT); "disable" is no TLS at all.
    assert creds["ssl"] == (False if mode == "disable" else mode)
    assert "connect" not in creds


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
def test_verifying_modes_need_a_root_certificate(mode: str, home: Path) -> None:
    with pytest.raises(DatabaseURLError, match=r"root\.crt\" does not exist: either provide"):
        credentials(f"postgresql://u@h/db?sslmode={mode}")
    (home / ".postgresql").mkdir()
    cert = _make_cert(home)
    cert.rename(home / ".postgresql" / "root.crt")
    context = credentials(f"postgresql://u@h/db?sslmode={mode}")["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname == (mode == "verify-full")


def test_no_sslmode_is_libpqs_prefer(home: Path) -> None:
    assert credentials("postgresql://u@h/db")["ssl"] == "prefer"


def test_settings_ssl_mode_overrides_the_url(home: Path) -> None:
    creds = credentials("postgresql://u@h/db?sslmode=disable", ssl_mode=SSLMode.REQUIRE)
    assert creds["ssl"] == "require"
    assert credentials("postgresql://u@h/db", ssl_mode=SSLMode.DISABLE)["ssl"] is False
    assert credentials("postgresql://u@h/db?sslmode=require", ssl_mode=SSLMode.REQUIRE)["ssl"]


@pytest.mark.parametrize(
    ("own", "setting"),
    [("verify-full", "disable"), ("require", "allow"), ("verify-full", "verify-ca"),
     ("prefer", "allow")],
)  # fmt: skip
def test_settings_ssl_mode_never_weakens_the_urls_own(home: Path, own: str, setting: str) -> None:
    with pytest.raises(DatabaseURLError) as refused:
        credentials(f"postgresql://u:secret@h/db?sslmode={own}", ssl_mode=SSLMode(setting))
    message = str(refused.value)
    assert f'TODO_APP_SSL_MODE="{setting}" would weaken' in message
    assert f'sslmode="{own}"' in message
    assert "secret" not in message


def _make_cert(tmp_path: Path) -> Path:
    import subprocess

    key, cert = tmp_path / "ca.key", tmp_path / "ca.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=todo-test-ca", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert


def test_sslrootcert_builds_a_verifying_context(tmp_path: Path, home: Path) -> None:
    cert = _make_cert(tmp_path)
    full = credentials(f"postgresql://u@h/db?sslmode=verify-full&sslrootcert={cert}")["ssl"]
    assert isinstance(full, ssl.SSLContext)
    assert full.verify_mode == ssl.CERT_REQUIRED
    assert full.check_hostname
    ca = credentials(f"postgresql://u@h/db?sslmode=verify-ca&sslrootcert={cert}")["ssl"]
    assert isinstance(ca, ssl.SSLContext)
    assert ca.verify_mode == ssl.CERT_REQUIRED
    assert not ca.check_hostname
    # libpq: "require" with a root certificate verifies the chain like verify-ca.
    req = credentials(f"postgresql://u@h/db?sslmode=require&sslrootcert={cert}")["ssl"]
    assert isinstance(req, ssl.SSLContext)
    assert req.verify_mode == ssl.CERT_REQUIRED
    system = credentials("postgresql://u@h/db?sslmode=verify-full&sslrootcert=system")["ssl"]
    assert isinstance(system, ssl.SSLContext)
    assert system.check_hostname
    # libpq: sslrootcert=system alone means verify-full.
    implied = credentials("postgresql://u@h/db?sslrootcert=system")["ssl"]
    assert isinstance(implied, ssl.SSLContext)
    assert implied.check_hostname


def test_other_libpq_parameters_are_translated() -> None:
    creds = credentials(
        "postgres://u:p%40ss@h:6543/db%20name?connect_timeout=7&application_name=web"
        "&target_session_attrs=read-write&options=-c%20statement_timeout%3D5000%20-cwork_mem%3D4MB",
        statement_timeout=30,
    )
    assert creds["port"] == 6543
    assert creds["database"] == "db name"
    password = creds["password"]
    assert callable(password)
    assert password() == "p@ss"
    assert creds["timeout"] == 7.0
    assert creds["application_name"] == "web"
    assert creds["target_session_attrs"] == "read-write"
    # The server reads "options" itself, as it does libpq's; the URL's statement_timeout
    # there wins over the setting.
    assert creds["server_settings"] == {"options": "-c statement_timeout=5000 -cwork_mem=4MB"}


def test_sqlite_urls() -> None:
    assert credentials("sqlite://:memory:")["file_path"] == ":memory:"
    assert credentials("sqlite://todo.sqlite3")["file_path"] == "todo.sqlite3"
    assert credentials("sqlite:///var/lib/todo.sqlite3")["file_path"] == "/var/lib/todo.sqlite3"
    assert credentials("sqlite://x.db?journal_mode=DELETE")["journal_mode"] == "DELETE"
    with pytest.raises(DatabaseURLError, match="unsupported SQLite URL parameter"):
        credentials("sqlite://x.db?foo=1")
    with pytest.raises(DatabaseURLError, match="names no file"):
        credentials("sqlite://")
    with pytest.raises(DatabaseURLError, match="PostgreSQL URLs only"):
        DatabaseURL("sqlite://x.db").with_database("other")


def test_malformed_urls() -> None:
    with pytest.raises(DatabaseURLError, match="must look like"):
        DatabaseURL("not a url").dialect
    with pytest.raises(DatabaseURLError, match="unsupported database scheme"):
        DatabaseURL("mysql://h/db").dialect


def test_with_database_keeps_credentials() -> None:
    other = DatabaseURL("postgresql://u:pw@h:5433/db?sslmode=disable").with_database("x_1")
    assert other.reveal() == "postgresql://u:pw@h:5433/x_1?sslmode=disable"
    assert other == DatabaseURL(other.reveal())
    assert hash(other) == hash(DatabaseURL(other.reveal()))


def test_settings_from_environment_and_dotenv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "DATABASE_URL=postgresql://u:fromdotenv@h/db\nTODO_APP_POOL_MAX_SIZE=7\n"
    )
    settings = Settings()
    assert settings.database_url.password == "fromdotenv"
    assert settings.pool_max_size == 7
    monkeypatch.setenv("TODO_APP_POOL_MAX_SIZE", "12")
    monkeypatch.setenv("TODO_APP_POOL_MIN_SIZE", "2")
    monkeypatch.setenv("TODO_APP_SSL_MODE", "require")
    monkeypatch.setenv("TODO_APP_STATEMENT_CACHE_SIZE", "0")
    settings = Settings()
    creds = connection_entry(settings)["credentials"]
    assert (creds["minsize"], creds["maxsize"]) == (2, 12)
    assert creds["ssl"] == "require"
    assert creds["statement_cache_size"] == 0


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "TODO_APP_DATABASE_URL", "TODO_APP_SSL_MODE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.database_url.dialect == "sqlite"
    assert settings.ssl_mode is None
    monkeypatch.setenv("TODO_APP_SSL_MODE", "")
    monkeypatch.setenv("TODO_APP_STATEMENT_CACHE_SIZE", "")
    monkeypatch.setenv("TODO_APP_STATEMENT_TIMEOUT", "")
    monkeypatch.setenv("DATABASE_URL", "")
    # Empty is unset: the defaults, not errors.
    assert Settings().ssl_mode is None
    assert Settings().statement_cache_size is None
    assert Settings().statement_timeout == 30
    assert Settings().database_url.dialect == "sqlite"
    monkeypatch.setenv("TODO_APP_STATEMENT_TIMEOUT", "0")
    assert Settings().statement_timeout is None, "0 is PostgreSQL's 'no limit'"


def test_pool_bounds_are_checked() -> None:
    with pytest.raises(ValidationError, match="must not exceed"):
        Settings(pool_min_size=5, pool_max_size=2)


def test_app_config_binds_to_the_named_connection() -> None:
    assert app_config("tasks_db") == {
        "models": ["todo_app.models"],
        "default_connection": "tasks_db",
    }
    config = tortoise_config("sqlite://:memory:", connection_name="tasks_db")
    assert set(config["connections"]) == {"tasks_db"}
    assert config["apps"]["todo_app"]["default_connection"] == "tasks_db"
    assert config["apps"]["todo_app"]["models"] == ["todo_app.models"]
    assert app_config("x", with_aerich=True)["models"] == ["todo_app.models", "aerich.models"]


def test_aerich_entry_reads_settings_when_accessed(monkeypatch: pytest.MonkeyPatch) -> None:
    import todo_app.config

    monkeypatch.setenv("DATABASE_URL", "postgresql://u:pw@somewhere/db")
    config = todo_app.config.TORTOISE_ORM
    assert config["connections"]["default"]["credentials"]["host"] == "somewhere"
    with pytest.raises(AttributeError):
        todo_app.config.NOPE


async def test_tortoise_debug_log_does_not_show_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    config = tortoise_config("postgresql://u:averylongsecretpassword@127.0.0.1:1/db")
    async with TortoiseContext():
        await Tortoise.init(config=config)
    assert "averylongsecretpassword" not in caplog.text
    assert "avery" not in caplog.text  # Tortoise would print a third of a str password


def test_encoded_password_keys_are_masked_and_plus_is_kept() -> None:
    url = DatabaseURL("postgresql://app@db.example/app?pass%77ord=hunter2&sslmode=disable")
    assert "hunter2" not in repr(url)
    assert url.password == "hunter2"
    plus = DatabaseURL("postgresql://app@db.example/app?password=ab+cd")
    assert plus.password == "ab+cd"  # libpq keeps "+"; form decoding would make a space
    password = credentials(plus.reveal())["password"]
    assert callable(password)
    assert password() == "ab+cd"


def test_statement_timeout_reaches_server_and_client() -> None:
    creds = credentials("postgresql://u@h/db", statement_timeout=30)
    assert creds["server_settings"] == {"statement_timeout": "30000"}
    assert creds["command_timeout"] == 35
    tiny = credentials("postgresql://u@h/db", statement_timeout=0.0004)
    assert tiny["server_settings"]["statement_timeout"] == "1", "0 would mean no limit"
    pooled = credentials("postgresql://u@h-pooler/db", statement_timeout=2)
    assert "server_settings" not in pooled  # PgBouncer refuses startup parameters
    assert pooled["command_timeout"] == 4
    assert credentials("postgresql://u@h/db", connect_timeout=3)["timeout"] == 3
    assert "command_timeout" not in credentials("postgresql://u@h/db")


# -- settings fail loudly, and only where it matters -----------------------------------


def _cli(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from todo_app.cli import main

    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out + err


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "TODO_APP_DATABASE_URL", "TEST_DATABASE_URL",
                 "TODO_APP_TEST_DATABASE_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_a_dotenv_line_that_does_not_parse_is_an_error(
    clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (clean_env / ".env").write_text(
        'TODO_APP_POOL_MAX_SIZE=5\nDATABASE_URL="postgresql://u:s3cret@h/db\nX=1\n'
    )
    with pytest.raises(ValueError, match=r"\.env: line 2 cannot be parsed") as raised:
        get_settings()
    assert "s3cret" not in str(raised.value)
    code, output = _cli("list", capsys=capsys)
    assert code == 2, output
    assert ".env: line 2 cannot be parsed" in output
    assert "s3cret" not in output
    assert not (clean_env / "todo_app.sqlite3").exists(), "no silent fall-back to SQLite"


@pytest.mark.parametrize("kind", ["directory", "dangling symlink", "symlink loop"])
def test_a_dotenv_that_cannot_be_read_is_an_error(
    clean_env: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only a missing .env means "no .env": one that is there but cannot be read
    used to be skipped, and the default SQLite file silently used instead."""
    dotenv = clean_env / ".env"
    if kind == "directory":
        dotenv.mkdir()
    elif kind == "dangling symlink":
        dotenv.symlink_to(clean_env / "config" / "production.env")
    else:
        dotenv.symlink_to(dotenv)
    with pytest.raises(SettingsError, match=r"\.env") as raised:
        get_settings()
    assert "cannot be read" in str(raised.value)
    code, output = _cli("list", capsys=capsys)
    assert code == 2, output
    assert ".env: cannot be read as a .env file: it is " in output
    assert output.count("\n") == 1
    assert not (clean_env / "todo_app.sqlite3").exists(), "no silent fall-back to SQLite"


def test_an_unreadable_dotenv_is_an_error(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """(Root reads any file: the refusal is simulated where the file is opened.)"""
    (clean_env / ".env").write_text("TODO_APP_POOL_MAX_SIZE=7\n")

    def refused(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(todo_app.settings, "open", refused, raising=False)
    with pytest.raises(SettingsError, match=r"\.env: cannot be read as a \.env file: Permission"):
        get_settings()


def test_a_dotenv_through_a_symlink_or_missing_is_fine(clean_env: Path) -> None:
    (clean_env / "real.env").write_text("TODO_APP_POOL_MAX_SIZE=7\n")
    assert get_settings().pool_max_size == 10, "no .env: the defaults"
    (clean_env / ".env").symlink_to(clean_env / "real.env")
    assert get_settings().pool_max_size == 7


def test_errors_name_the_variable_the_user_set(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:s3cret@h/db?sslmode=sometimes")
    with pytest.raises(ValueError, match=r"^DATABASE_URL: .*invalid sslmode") as raised:
        get_settings()
    assert "s3cret" not in str(raised.value)
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("TODO_APP_DATABASE_URL", "mysql://h/db")
    with pytest.raises(ValueError, match=r"^TODO_APP_DATABASE_URL: unsupported database scheme"):
        get_settings()
    monkeypatch.delenv("TODO_APP_DATABASE_URL")
    (clean_env / ".env").write_text("TODO_APP_POOL_MAX_SIZE=many\n")
    with pytest.raises(ValueError, match=r"^TODO_APP_POOL_MAX_SIZE \(in \.env\): "):
        get_settings()


def test_empty_database_url_is_unset_and_db_wins(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "")
    monkeypatch.setenv("TEST_DATABASE_URL", "garbage://u:s3cret@nowhere")
    db = f"sqlite://{clean_env / 'given.sqlite3'}"
    assert _cli("--db", db, "migrate", capsys=capsys)[0] == 0
    code, output = _cli("--db", db, "--user", "a", "add", "first", capsys=capsys)
    assert code == 0, output
    assert (clean_env / "given.sqlite3").exists()
    # The unusable test-only setting broke nothing, and shows only when used.
    with pytest.raises(DatabaseURLError, match="unsupported database scheme"):
        tortoise_connection(get_settings().test_database_url)


def test_connection_failures_are_one_line_with_the_reason() -> None:
    import asyncpg

    from todo_app.connection import connection_failure

    cases = {
        asyncpg.InvalidCatalogNameError('database "nope" does not exist'): (
            'database "nope" does not exist'
        ),
        asyncpg.InvalidPasswordError('password authentication failed for user "u"'): (
            "authentication failed: password"
        ),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"): "too many connections",
        ConnectionError('PostgreSQL server at "h:1" rejected SSL upgrade'): "TLS refused",
        asyncpg.ConnectionDoesNotExistError("connection was closed"): "a PostgreSQL server?",
        asyncpg.TargetServerAttributeNotMatched("None of the hosts match"): "target_session_attrs",
        OSError(111, "Connect call failed ('127.0.0.1', 1)"): "Connect call failed",
    }
    for error, expected in cases.items():
        reason = connection_failure(error)
        assert expected in reason
        assert "\n" not in reason


def test_bad_target_session_attrs_lists_the_valid_values() -> None:
    with pytest.raises(DatabaseURLError, match=r"valid: any, read-write, read-only, primary"):
        credentials("postgresql://u@h/db?target_session_attrs=master")


# -- libpq's meaning, case by case (the differential test covers the corpus) ----------


def test_several_hosts_use_the_connect_hook(home: Path) -> None:
    creds = credentials("postgresql://u@h1:5432,h2:5433/db?target_session_attrs=read-write")
    hook = creds["connect"]
    assert hook.addresses == (("h1", 5432), ("h2", 5433))
    assert hook.target_session_attrs == "read-write"
    assert hook.timeout is None
    assert "timeout" not in creds
    same_port = credentials("postgresql://u@h1,h2:6000/db?connect_timeout=3")["connect"]
    assert same_port.addresses == (("h1", 5432), ("h2", 6000))
    assert same_port.timeout == 3, "per host, as libpq"


def test_sockets_and_query_forms(home: Path) -> None:
    creds = credentials("postgresql://%2Fvar%2Frun%2Fpostgresql/db")
    assert creds["host"] == "/var/run/postgresql"
    creds = credentials("postgresql:///x?host=/tmp&port=5433&user=me&dbname=other")
    assert (creds["host"], creds["port"], creds["user"], creds["database"]) == (
        "/tmp", 5433, "me", "other",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("query", "timeout"), [("0", None), ("-5", None), ("7", 7.0), (" 3 ", 3.0)]
)
def test_connect_timeout_as_libpq(query: str, timeout: float | None, home: Path) -> None:
    assert credentials(f"postgresql://u@h/db?connect_timeout={query}")["timeout"] == timeout


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://u@h:0/db", 'invalid port number: "0"'),
        ("postgresql://u@h/db?connect_timeout=2.5", 'invalid integer value "2.5"'),
        ("postgresql://u@h/db?connect_timeout=nan", 'invalid integer value "nan"'),
        ("postgresql://u@h/db?sslrootcert=/missing", 'root certificate file "/missing"'),
        ("postgresql://u@h/db?sslmode=require&sslrootcert=system", 'weak sslmode "require"'),
        ("postgresql://u@h/db?sslmode=disable&channel_binding=require", "SSL not in use"),
        ("postgresql://u@h1,h2/db?port=1,2,3", "could not match 3 port numbers to 2 hosts"),
        ("postgresql://u@h/db?hostaddr=1.2.3.4", "put the address in host instead"),
        ("postgresql://u@h/db?sslmod=require", "did you mean 'sslmode'"),
        ("postgresql://u@h/db?database=x", 'libpq calls it "dbname"'),
        ("postgresql://u@[::1/db", 'matching "]"'),
        ("postgresql://u@h/d%zz", "invalid percent-encoded token in the database name"),
    ],
)
def test_refusals_give_a_reason(url: str, reason: str, home: Path) -> None:
    with pytest.raises(DatabaseURLError) as raised:
        credentials(url)
    assert reason in str(raised.value)


def test_misspelled_and_tls_secrets_are_masked() -> None:
    for key in ("pasword", "passwordd", "sslpasswd", "sslpassword", "PassWord", "pwd"):
        url = DatabaseURL(f"postgresql://u@h/db?{key}=hunter2&sslmode=disable")
        assert "hunter2" not in repr(url), key
        try:
            shown = repr(tortoise_connection(url))
        except DatabaseURLError as exc:  # every one but sslpassword is refused
            shown = str(exc)
        assert "hunter2" not in shown, key
    raw = DatabaseURL("postgresql://u:pa?ss&w=rd@h/db")
    assert raw.password == "pa?ss&w=rd"  # libpq: the user info ends at the "@"
    assert "pa?ss" not in repr(raw)
    tail = DatabaseURL("postgresql://h/db?password=ab&cd=ef&sslmode=disable")
    assert "cd" not in repr(tail).partition("?")[2], "a raw & in a password hides its tail"


def test_prefer_and_allow_verify_when_given_a_root(tmp_path: Path, home: Path) -> None:
    cert = _make_cert(tmp_path)
    for mode, order in (
        ("prefer", ["tls", False]),
        ("allow", [False, "tls"]),
        ("", ["tls", False]),
    ):
        query = f"sslmode={mode}&" if mode else ""
        hook = credentials(f"postgresql://u@h/db?{query}sslrootcert={cert}")["connect"]
        shape = ["tls" if isinstance(t, ssl.SSLContext) else t for t in hook.transports]
        assert shape == order, mode
        context = next(t for t in hook.transports if isinstance(t, ssl.SSLContext))
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert not context.check_hostname


async def test_connect_hook_tries_hosts_and_transports_in_libpq_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncpg

    from todo_app.dialects.postgres.pool import LibpqConnect

    tried: list[tuple[object, object, object]] = []

    async def fake_connect(**kwargs: object) -> str:
        tried.append((kwargs["host"], kwargs["ssl"], kwargs["target_session_attrs"]))
        if kwargs["host"] == "down":
            raise ConnectionRefusedError(111, "refused")
        if kwargs["ssl"] == "tls":
            raise ssl.SSLCertVerificationError("certificate verify failed")
        if kwargs["target_session_attrs"] == "standby":
            raise asyncpg.TargetServerAttributeNotMatched("not a standby")
        return f"connected to {kwargs['host']}"

    monkeypatch.setattr(asyncpg, "connect", fake_connect)
    hook = LibpqConnect(
        [("down", 1), ("up", 2)], ["tls", False], timeout=5, target_session_attrs="prefer-standby"
    )
    assert await hook(None, host="ignored", ssl=True, user="u") == "connected to up"
    assert tried == [
        ("down", "tls", "standby"), ("down", False, "standby"),
        ("up", "tls", "standby"), ("up", False, "standby"),
        ("down", "tls", "any"), ("down", False, "any"),
        ("up", "tls", "any"), ("up", False, "any"),
    ]  # fmt: skip
    assert repr(hook) == "LibpqConnect(down:1,up:2)"
    with pytest.raises(ConnectionRefusedError):
        await LibpqConnect([("down", 1)], [False], timeout=None)(None)


async def test_connect_hook_stops_at_a_live_server_that_refuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncpg

    from todo_app.dialects.postgres.pool import LibpqConnect

    tried: list[object] = []

    async def fake_connect(**kwargs: object) -> str:
        tried.append(kwargs["ssl"])
        if kwargs["ssl"] is False:  # pg_hba.conf: hostssl only
            raise asyncpg.InvalidAuthorizationSpecificationError("no pg_hba.conf entry")
        if kwargs["host"] == "second":
            return "connected"
        raise asyncpg.InvalidPasswordError("password authentication failed")

    monkeypatch.setattr(asyncpg, "connect", fake_connect)
    allow = LibpqConnect([("first", 1), ("second", 2)], [False, "tls"], timeout=None)
    # allow: plain text refused by the server, so TLS; a failed login stops the search.
    with pytest.raises(asyncpg.InvalidPasswordError):
        await allow(None)
    assert tried == [False, "tls"]


async def test_a_server_that_is_not_postgresql_is_named() -> None:
    import asyncio

    from todo_app import TaskRepository, TaskStoreUnavailable

    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        for query in ("", "?sslmode=disable"):
            config = tortoise_config(f"postgresql://u@127.0.0.1:{port}/db{query}")
            async with TortoiseContext():
                await Tortoise.init(config=config)
                with pytest.raises(TaskStoreUnavailable, match="PostgreSQL server") as raised:
                    await TaskRepository("x").counts()
            assert "\n" not in str(raised.value)
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.postgres
def test_cli_names_the_servers_reason(capsys: pytest.CaptureFixture[str]) -> None:
    server = get_settings().test_database_url
    missing = server.with_database("todo_app_no_such_database")
    code, output = _cli("--db", missing.reveal(), "list", capsys=capsys)
    assert code == 6, output
    assert 'database "todo_app_no_such_database" does not exist' in output
    assert output.count("\n") == 1
    params = server.params()
    stranger = f"postgresql://todo_app_no_such_role@{params['host']}:{params.get('port', 5432)}/x"
    code, output = _cli("--db", stranger, "list", capsys=capsys)
    assert code == 6, output
    assert 'authentication failed: role "todo_app_no_such_role" does not exist' in output


def test_every_setting_is_documented_in_the_reference_and_env_example() -> None:
    """docs/configuration.md's table and ``.env.example`` name every setting by the
    variable a user sets."""
    from pydantic import AliasChoices

    root = Path(__file__).resolve().parent.parent
    reference = (root / "docs" / "configuration.md").read_text()
    example = (root / ".env.example").read_text()
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        assert isinstance(alias, AliasChoices), name
        variables = [str(choice) for choice in alias.choices if str(choice).isupper()]
        assert any(f"| `{variable}`" in reference or f"`{variable}` |" in reference
                   or f"/ `{variable}`" in reference for variable in variables), name  # fmt: skip
        assert any(f"\n{variable}=" in example for variable in variables), name
