"""The examples in examples/ run for real: HTTP requests through each framework, on
both dialects, with the app's own start-up doing Tortoise init and migrations."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer
from asgi_lifespan import LifespanManager

from examples import aiohttp_app, fastapi_app
from tests.helpers import DIALECTS, FreshURL

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def frozen_at_start_up() -> Iterator[None]:
    """The framework examples freeze what start-up made (``freeze_startup_objects``);
    the test process lives on, so the freeze is undone after each."""
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_plain_asyncio_example(fresh_database_url: FreshURL, dialect: str) -> None:
    url = (await fresh_database_url(dialect)).reveal()
    for _ in range(2):  # the second run finds the database migrated already
        process = await asyncio.create_subprocess_exec(
            sys.executable, "examples/plain_asyncio.py", url,
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode == 0, err.decode()
    assert out.decode().count("completed  Written by a plain asyncio program") == 2
    assert "{'pending': 0, 'completed': 2}" in out.decode()


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_fastapi_example(
    fresh_database_url: FreshURL, dialect: str, frozen_at_start_up: None
) -> None:
    url = (await fresh_database_url(dialect)).reveal()
    # One connection name per dialect: Tortoise caches SQL per name for the process.
    app = fastapi_app.create_app(url, connection_name=f"fastapi_{dialect}")
    async with LifespanManager(app) as manager:
        assert gc.get_freeze_count() > 0, "start-up froze its objects"
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            alice, bob = {"X-User": "alice"}, {"X-User": "bob"}
            created = await client.post("/tasks", json={"title": " Buy milk "}, headers=alice)
            assert created.status_code == 201, created.text
            task = created.json()
            assert task["title"] == "Buy milk"
            assert created.headers["ETag"] == '"1"'
            path = f"/tasks/{task['id']}"

            assert (await client.get(path, headers=bob)).status_code == 404
            assert (
                await client.post("/tasks", json={"title": "  "}, headers=alice)
            ).status_code == 422
            renamed = await client.patch(path, json={"title": "Oat milk"},
                                         headers={**alice, "If-Match": '"1"'})  # fmt: skip
            assert renamed.status_code == 200
            assert renamed.headers["ETag"] == '"2"'
            stale = await client.patch(
                path, json={"title": "lost"}, headers={**alice, "If-Match": '"1"'}
            )
            assert stale.status_code == 412
            # A precondition the router cannot honour is refused, never ignored: a
            # malformed one is 400, a weak tag (never a strong match) 412.
            for malformed, status in (("abc", 400), ('W/"2"', 412)):
                refused = await client.patch(
                    path, json={"title": "lost"}, headers={**alice, "If-Match": malformed}
                )
                assert refused.status_code == status, refused.text
                assert refused.headers["content-type"] == "application/problem+json"
            assert (await client.get(path, headers=alice)).json()["title"] == "Oat milk"
            done = await client.post(f"{path}/complete", headers=alice)
            assert done.json()["status"] == "completed"
            page = (
                await client.get("/tasks", params={"status": "completed"}, headers=alice)
            ).json()
            assert [t["title"] for t in page["items"]] == ["Oat milk"]
            assert page["next_cursor"] is None
            bad_cursor = await client.get("/tasks", params={"cursor": "nope"}, headers=alice)
            assert bad_cursor.status_code == 422
            assert (await client.get("/stats", headers=alice)).json() == {
                "pending": 0,
                "completed": 1,
            }
            assert (await client.delete(path, headers=alice)).status_code == 204
            assert (await client.get(path, headers=alice)).status_code == 404


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_aiohttp_example(
    fresh_database_url: FreshURL, dialect: str, frozen_at_start_up: None
) -> None:
    url = (await fresh_database_url(dialect)).reveal()
    app = aiohttp_app.create_app(url, connection_name=f"aiohttp_{dialect}")
    async with TestClient(TestServer(app)) as client:
        assert gc.get_freeze_count() > 0, "start-up froze its objects"
        created = await client.post("/tasks", json={"title": "From aiohttp"},
                                    headers={"X-User": "carol"})  # fmt: skip
        assert created.status == 201, await created.text()
        task = await created.json()
        missing = await client.post(f"/tasks/{task['id']}/complete", headers={"X-User": "dave"})
        assert missing.status == 404
        done = await client.post(f"/tasks/{task['id']}/complete", headers={"X-User": "carol"})
        assert (await done.json())["status"] == "completed"
        listing = await (await client.get("/tasks", headers={"X-User": "carol"})).json()
        assert [t["title"] for t in listing["items"]] == ["From aiohttp"]
        invalid = await client.post("/tasks", json={"title": ""}, headers={"X-User": "carol"})
        assert invalid.status == 422
        no_owner = await client.get("/tasks")
        assert no_owner.status == 422
