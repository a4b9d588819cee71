from todo_app.models import Task
from todo_app.testing import TodoDatabase


async def test_fixture_gives_migrated_db(todo_db: TodoDatabase) -> None:
    task = await Task.create(user_id="u1", title="  hello  ")
    fetched = await Task.get(id=task.id)
    assert fetched.title == "hello"
    assert await Task.all().count() == 1
