import re
from pathlib import Path

from todo_app import TaskCreate, TaskRepository
from todo_app.models import Task
from todo_app.testing import TodoDatabase


async def test_fixture_gives_migrated_db(todo_db: TodoDatabase) -> None:
    task = await TaskRepository("u1").create(TaskCreate(title="  hello  "))
    fetched = await Task.get(id=task.id)  # reading through the model works
    assert fetched.title == "hello"
    assert await Task.all().count() == 1


#: A PostgreSQL server named in a test instead of taken from TEST_DATABASE_URL.
_FIXED_SERVER = re.compile(r"(127\.0\.0\.1|localhost|::1)\]?(:|\", *)5432\b|TcpProxy\(5432\b")


def fixed_servers(directory: Path) -> list[str]:
    """``file:line: text`` of each line under ``directory`` that names the server."""
    return [
        f"{source.name}:{number}: {line.strip()}"
        for source in sorted(directory.rglob("*.py"))
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1)
        if _FIXED_SERVER.search(line)
    ]


def test_the_suite_reaches_the_server_test_database_url_names() -> None:
    """No test connects to a PostgreSQL server of its own choosing: the shared one is
    wherever TEST_DATABASE_URL says (tests.helpers.server_address, postgres_url)."""
    assert fixed_servers(Path(__file__).parent) == []
