"""The command line's grammar: every verb, its arguments and its handler.

Values that belong to the package are taken from it, not repeated: the statuses
``--status`` accepts come from ``TaskStatus``, the page sizes ``--limit`` names from
the repository. The repository is slow to import, so its numbers are read only
when ``list --help`` is shown; the bounds themselves are enforced by the repository
(``--limit 0`` is exit 5, as through the API).

``add`` and ``edit`` take an option per field of ``TaskCreate``/``TaskUpdate`` that
they do not spell themselves (``--due-at`` for a ``due_at``; ``edit`` also
``--clear-due-at`` when it may be null): a field added to the schemas reaches the
command line without a change here. pydantic is slow to import, so those options are
added when ``add`` or ``edit`` is parsed, and only then.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from todo_app.cli import migrations, tasks, transfer
from todo_app.cli.exits import EXIT_CODES_HELP, output_error
from todo_app.compat import argparse_hooks_present as hooks_present
from todo_app.rules import TaskStatus

if TYPE_CHECKING:
    from _typeshed import SupportsWrite
    from pydantic import BaseModel
    from pydantic.fields import FieldInfo

__all__ = ["EDIT_FIELDS", "SchemaFields", "build_parser", "schema_values"]

Handler = Callable[[argparse.Namespace], Awaitable[int]]


@dataclass(frozen=True)
class SchemaFields:
    """The options a verb takes from a schema of ``todo_app.schemas``: one per field
    not in ``spelled`` (the verb's own arguments for it); with ``clearable``, also
    ``--clear-<field>`` for each field that may be null."""

    schema: str
    spelled: frozenset[str]
    clearable: bool = False

    def fields(self) -> dict[str, Any]:
        from todo_app import schemas

        model: type[BaseModel] = getattr(schemas, self.schema)
        return {name: info for name, info in model.model_fields.items() if name not in self.spelled}

    def clears(self, info: FieldInfo) -> bool:
        """Whether the field ``info`` also gets ``--clear-<field>``."""
        return self.clearable and not info.is_required() and _may_be_null(info)

    def flags(self) -> list[str]:
        """Every option these fields add, as typed: ``--due-at``, ``--clear-due-at``."""
        flags: list[str] = []
        for name, info in self.fields().items():
            flag = name.replace("_", "-")
            flags.append(f"--{flag}")
            if self.clears(info):
                flags.append(f"--clear-{flag}")
        return flags


#: ``edit``'s options from ``TaskUpdate``: every field but those it spells itself.
EDIT_FIELDS = SchemaFields(
    "TaskUpdate", frozenset({"title", "description", "status"}), clearable=True
)


#: Namespace attributes of the schema-derived options: ``field_<name>``, ``clear_<name>``.
FIELD_PREFIX = "field_"
CLEAR_PREFIX = "clear_"


class _Parser(argparse.ArgumentParser):
    """argparse ignores a failed write of its help; here a closed stdout ends the
    process like any other output does (quietly, 141). A verb built with
    ``schema_fields`` adds its schema's options when it is parsed."""

    def __init__(self, *args: Any, schema_fields: SchemaFields | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._schema_fields = schema_fields

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._schema_fields is not None:
            fields, self._schema_fields = self._schema_fields, None
            self._add_schema_options(fields)
        return super().parse_known_args(args, namespace)

    def _add_schema_options(self, fields: SchemaFields) -> None:
        for name, info in fields.fields().items():
            flag = name.replace("_", "-")
            self.add_argument(
                f"--{flag}",
                dest=f"{FIELD_PREFIX}{name}",
                metavar="VALUE",
                help=info.description or f"the task's {name.replace('_', ' ')}",
            )
            if fields.clears(info):
                self.add_argument(
                    f"--clear-{flag}",
                    dest=f"{CLEAR_PREFIX}{name}",
                    action="store_true",
                    help=f"clear the task's {name.replace('_', ' ')}",
                )

    # argparse's hook (todo_app.compat, "argparse.hooks"): without it argparse writes
    # its own way, and only a closed stdout's exit status differs.
    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        _write(message, file or sys.stderr)


def _write(message: str, stream: SupportsWrite[str]) -> None:
    if not message:
        return
    to_stdout = stream is sys.stdout
    try:
        stream.write(message)
        if to_stdout:
            sys.stdout.flush()
    except OSError as exc:
        if to_stdout:
            raise output_error(exc) from None
    except AttributeError:  # the stream is None
        pass


def _page_sizes(text: str) -> str:
    """``text`` with ``%(max_page_size)s`` and ``%(default_page_size)s`` filled in from
    the repository (slow to import: only when help is shown)."""
    import inspect

    from todo_app.repository import MAX_PAGE_SIZE, TaskRepository

    default = inspect.signature(TaskRepository.list).parameters["limit"].default
    text = text.replace("%(max_page_size)s", str(MAX_PAGE_SIZE))
    return text.replace("%(default_page_size)s", str(default))


class _HelpFormatter(argparse.HelpFormatter):
    """Fills the page sizes into a help text when help is shown, and only then
    (argparse's hook: see :func:`_formatter`)."""

    def _expand_help(self, action: argparse.Action) -> str:
        if action.help and "_page_size)s" in action.help:
            action.help = _page_sizes(action.help)
        return super()._expand_help(action)


def _page_size_help(text: str) -> str:
    return text if hooks_present() else _page_sizes(text)


def _formatter() -> type[argparse.HelpFormatter]:
    """``_HelpFormatter`` where argparse has the hook it overrides; else argparse's own,
    and :func:`build_parser` fills the page sizes in at once."""
    return _HelpFormatter if hooks_present() else argparse.HelpFormatter


def _may_be_null(info: FieldInfo) -> bool:
    annotation = info.annotation
    return annotation is None or type(None) in typing.get_args(annotation)


def schema_values(args: argparse.Namespace) -> dict[str, Any]:
    """The schema-derived options given on the command line: ``{field: text}``, and
    ``{field: None}`` for a ``--clear-<field>``."""
    values: dict[str, Any] = {}
    for key, value in vars(args).items():
        if key.startswith(FIELD_PREFIX) and value is not None:
            values[key.removeprefix(FIELD_PREFIX)] = value
        elif key.startswith(CLEAR_PREFIX) and value is True:
            values[key.removeprefix(CLEAR_PREFIX)] = None
    return values


def _seconds(text: str) -> float:
    """A wait in seconds that bounds the wait: ``nan`` and ``inf`` do not, nor does a
    negative one (the migration runner refuses them too)."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(
            f"must be a finite number of seconds, 0 or more (got {text!r})"
        )
    return seconds


def _migration_name(text: str) -> str:
    """A migration name: what follows ``<n>_<timestamp>_`` in its file name."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a lower-case identifier (letters, digits and _, starting "
            "with a letter)"
        )
    return text


class _Version(argparse.Action):
    """``--version``: the installed package's version, looked up only when asked."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS) -> None:
        super().__init__(
            option_strings, dest, default=argparse.SUPPRESS, nargs=0, help="show the version"
        )

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        import todo_app

        _write(f"todo-app {todo_app.__version__}\n", sys.stdout)
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="todo-app",
        description="Owner-scoped tasks on SQLite or PostgreSQL.",
        epilog=EXIT_CODES_HELP,
        formatter_class=_formatter(),
    )
    parser.add_argument("--version", action=_Version)
    parser.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="database URL (default: DATABASE_URL, else the embedded SQLite file)",
    )
    parser.add_argument(
        "--user",
        metavar="ID",
        default=None,
        help="owner of the tasks (default: $TODO_USER, else your user name)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, handler: Handler, text: str, schema_fields: SchemaFields | None = None
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=text,
            description=text,
            formatter_class=_formatter(),
            schema_fields=schema_fields,
        )
        sub.set_defaults(handler=handler)
        return sub

    def with_json(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--json", action="store_true", help="print JSON for scripts")
        return sub

    def with_id(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("id", help="task id, or a unique prefix of it (4+ characters)")
        return sub

    def with_version(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "--expect-version",
            type=int,
            metavar="N",
            help="refuse (exit 4) unless the task is at this version",
        )
        return sub

    def with_lock_timeout(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "--lock-timeout",
            type=_seconds,
            default=300.0,
            metavar="SECONDS",
            help="wait at most this long for another migration's lock (default 300)",
        )
        return sub

    # -- the schema ----------------------------------------------------------------
    with_lock_timeout(
        command("migrate", migrations.cmd_migrate, "apply pending migrations (idempotent)")
    )
    down = with_lock_timeout(
        command(
            "downgrade",
            migrations.cmd_downgrade,
            "show, then (with --yes) revert the newest migration(s)",
        )
    )
    down.add_argument("--steps", type=int, default=1, help="how many (default 1)")
    down.add_argument("--yes", action="store_true", help="confirm: this drops data")
    install = command(
        "install-migrations",
        migrations.cmd_install_migrations,
        "copy todo_app's migrations into a host's Aerich folder (never overwrites)",
    )
    install.add_argument(
        "--location",
        help="the host's Aerich location (default: read from the Aerich config, as aerich does)",
    )
    command("history", migrations.cmd_history, "list migrations, [x] = applied")
    make = command(
        "makemigration",
        migrations.cmd_makemigration,
        "for todo_app's developers, in a checkout: write the migration of the models' "
        "change, with its table shapes recorded from throw-away databases",
    )
    make.add_argument(
        "name", nargs="?", type=_migration_name, help="the migration's name, e.g. due_at"
    )
    make.add_argument(
        "--pg-url",
        metavar="URL",
        help="PostgreSQL server for the throw-away database (default: TEST_DATABASE_URL)",
    )
    make.add_argument(
        "--record",
        action="store_true",
        help="record the shapes of the newest migration, written by hand, instead",
    )
    check = command(
        "check",
        migrations.cmd_check,
        "fail if models drifted from the migrations, the host's Aerich copy is behind, "
        "or the database is not at head",
    )
    check.add_argument("--drift-only", action="store_true", help="skip the database check")
    check.add_argument(
        "--allow-newer",
        action="store_true",
        help="pass a database a newer todo_app migrated if its table takes this version's writes",
    )
    for sub in (install, check):
        sub.add_argument(
            "-c",
            "--config",
            type=Path,
            default=Path("pyproject.toml"),
            metavar="FILE",
            help="Aerich's config file, as given to aerich -c (default: pyproject.toml); "
            "its [tool.aerich] or [tool.tortoise] location is used",
        )

    # -- tasks -----------------------------------------------------------------------
    add = with_json(
        command(
            "add",
            tasks.cmd_add,
            "add a task",
            SchemaFields("TaskCreate", frozenset({"title", "description", "status", "id"})),
        )
    )
    add.add_argument("title")
    add.add_argument("-d", "--description")
    add.add_argument("--done", action="store_true", help="add it as completed")

    listing = with_json(command("list", tasks.cmd_list, "list tasks, newest first"))
    listing.add_argument("--status", choices=[status.value for status in TaskStatus])
    listing.add_argument(
        "--limit",
        type=int,
        default=None,
        help=_page_size_help(
            "page size, 1..%(max_page_size)s (default %(default_page_size)s; "
            "with --all, %(max_page_size)s)"
        ),
    )
    listing.add_argument("--cursor", help="continue after a previous page")
    listing.add_argument("--oldest", action="store_true", help="oldest first")
    listing.add_argument("--all", action="store_true", help="every page, not just the first")

    with_json(with_id(command("show", tasks.cmd_show, "show one task")))
    edit = with_version(
        with_id(
            command(
                "edit",
                tasks.cmd_edit,
                "change a task's title, description or other fields",
                EDIT_FIELDS,
            )
        )
    )
    edit.add_argument("--title")
    edit.add_argument("-d", "--description")
    edit.add_argument("--clear-description", action="store_true")
    with_version(with_id(command("done", tasks.cmd_done, "mark a task completed")))
    with_version(with_id(command("reopen", tasks.cmd_reopen, "mark a task pending again")))
    with_version(with_id(command("rm", tasks.cmd_rm, "delete a task")))
    with_json(command("stats", tasks.cmd_stats, "count tasks by status"))

    # -- files ---------------------------------------------------------------------
    imp = command("import", transfer.cmd_import, "import JSON lines, UTF-8 (all or nothing)")
    imp.add_argument("file", help="file of JSON lines, or - for stdin")
    exp = command("export", transfer.cmd_export, "export tasks as JSON lines, UTF-8")
    exp.add_argument("file", nargs="?", default="-", help="output file (default: stdout)")

    command("demo", tasks.cmd_demo, "migrate and show a short tour with two users")
    return parser
