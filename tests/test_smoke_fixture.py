from todo_app import TaskCreate, TaskRepository
from todo_app.models import Task
from todo_app.testing import TodoDatabase


async def test_fixture_gives_migrated_db(todo_db: TodoDatabase) -> None:
    task = await TaskRepository("u1").create(TaskCreate(title="  hello  "))
    fetched = await Task.get(id=task.id)  # reading through the model works
    assert fetched.title == "hello"
    assert await Task.all().count() == 1
