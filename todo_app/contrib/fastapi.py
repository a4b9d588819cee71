"""The task API as a FastAPI router (``pip install todo_app[fastapi]``).

A host mounts it in two lines, with its own dependency for the owner::

    from todo_app.contrib.fastapi import tasks_router
    app.include_router(tasks_router(current_user))  # current_user: the host's auth

and starts Tortoise with ``todo_app.lifespan`` in its own lifespan.

What it speaks:

* ``ETag: "<version>"`` on every task; ``If-None-Match`` on ``GET`` (304),
  ``If-Match`` on writes (412 when the task is at another version). A precondition
  that is not the RFC 9110 grammar is 400; one that can never match (a weak tag, a
  tag this API never issued) is 412: never ignored.
* ``Idempotency-Key`` on ``POST /tasks``: the task id is derived from (owner, key),
  so a retry returns the task the first try made; the same key with another body
  is 409 (as a client-chosen ``id`` reused with other content is).
* Cursor pagination: ``next_cursor`` in the body and ``Link: <...>; rel="next"``.
* The consistency token (read replicas) as the ``X-Consistency-Token`` header and
  the ``todo_consistency`` cookie, both ways; without replicas nothing is sent.
* Every error as RFC 9457 ``application/problem+json`` (``type``, ``title``,
  ``status``, ``detail``; ``field`` for invalid input), the status from the error
  table (``TaskError.http_status``), request validation included; every status is
  in the OpenAPI document of its route.

Handlers answer with ready ``Response`` objects (``model_dump_json`` once), so
FastAPI does not validate and re-serialise each task a second time. No ``from
__future__ import annotations`` here: FastAPI reads the routes' annotations, which
name the router's own local aliases.
"""

import json
import re
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlencode

from pydantic import BaseModel, Field

try:
    from fastapi import APIRouter, Depends, Path, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.routing import APIRoute
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.responses import Response
except ImportError as exc:  # the extra is not installed
    raise ImportError(
        "todo_app.contrib.fastapi needs FastAPI: pip install 'todo-app[fastapi]'"
    ) from exc

from todo_app.errors import (
    TaskConflict,
    TaskDataError,
    TaskError,
    TaskNotFound,
    TaskStoreError,
    TaskStoreTimeout,
    TaskStoreUnavailable,
    TaskValidationError,
)
from todo_app.repository import MAX_PAGE_SIZE, TaskRepository
from todo_app.rules import MAX_VERSION, TaskStatus
from todo_app.schemas import TaskCreate, TaskPage, TaskRead, TaskUpdate

__all__ = [
    "CONSISTENCY_COOKIE",
    "CONSISTENCY_HEADER",
    "IDEMPOTENCY_NAMESPACE",
    "Problem",
    "task_repository",
    "tasks_router",
]

CONSISTENCY_HEADER: Final = "X-Consistency-Token"
CONSISTENCY_COOKIE: Final = "todo_consistency"
#: A token matters until every replica allowed to serve reads has replayed it, about
#: TODO_APP_REPLICA_MAX_LAG seconds (5): a minute is ample.
CONSISTENCY_MAX_AGE: Final = 60
#: ``uuid5(IDEMPOTENCY_NAMESPACE, f"{owner}\\n{key}")`` is the id a keyed create makes.
IDEMPOTENCY_NAMESPACE: Final = uuid.UUID("6f1d3c3e-5a55-4c1b-9a8e-3f7f2d0c1b19")
PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
_PROBLEM_BASE: Final = "urn:todo-app:problem:"

# RFC 9110 entity tags: a list of (W/)"etagc*"; etagc excludes '"', space and controls.
_ETAG: Final = r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"'
_ETAG_LIST: Final = re.compile(rf"\s*{_ETAG}(?:\s*,\s*{_ETAG})*\s*")
_ETAG_ONE: Final = re.compile(_ETAG)
# What OpenAPI documents: the same grammar in ASCII (a header a client sends is).
_ETAG_ASCII: Final = r'(W/)?"[\x21\x23-\x7e]*"'
_ETAG_PATTERN: Final = rf"^\s*(\*|{_ETAG_ASCII}(\s*,\s*{_ETAG_ASCII})*)\s*$"
_KEY_PATTERN: Final = r"^[\x21-\x7e]{1,255}$"


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field(description="A URI naming the kind of problem.")
    title: str
    status: int
    detail: str
    field: str | None = Field(
        default=None, description="The input at fault: a body field, parameter or header."
    )


#: (type, title) of each error the repository raises; a subclass not listed uses its
#: nearest listed base.
_KINDS: Final[Mapping[type[TaskError], tuple[str, str]]] = {
    TaskNotFound: ("task-not-found", "Task not found"),
    TaskConflict: ("conflict", "Conflicting write"),
    TaskValidationError: ("invalid-input", "Invalid input"),
    TaskStoreTimeout: ("store-timeout", "The database did not answer in time"),
    TaskStoreUnavailable: ("store-unavailable", "The database is unavailable"),
    TaskDataError: ("stored-data", "A stored task cannot be read"),
    TaskStoreError: ("store-error", "The database refused the operation"),
    TaskError: ("task-error", "Task error"),
}


class _Problem(Exception):
    """A problem the HTTP layer itself finds (a malformed header, a failed precondition)."""

    def __init__(self, status: int, kind: str, title: str, detail: str, field: str | None) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.field = field


def problem_response(
    status: int,
    kind: str,
    title: str,
    detail: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": _PROBLEM_BASE + kind,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if field is not None:
        body["field"] = field
    return Response(
        json.dumps(body, ensure_ascii=False).encode(),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _task_error(exc: TaskError) -> Response:
    for kind in type(exc).__mro__:
        found = _KINDS.get(kind)
        if found is not None:
            break
    else:  # pragma: no cover - TaskError itself is listed
        found = _KINDS[TaskError]
    if isinstance(exc, TaskValidationError):
        return problem_response(exc.http_status, *found, exc.message, exc.field)
    return problem_response(exc.http_status, *found, str(exc))


def _invalid_request(exc: RequestValidationError) -> Response:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    loc = [str(part) for part in first.get("loc", ())]
    field = ".".join(loc[1:]) if len(loc) > 1 else (loc[0] if loc else None)
    return problem_response(422, "invalid-input", "Invalid input", str(first.get("msg")), field)


class _ProblemRoute(APIRoute):
    """Every failure of its routes as problem+json, without app-wide handlers, so
    that mounting the router is all a host does."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except TaskError as exc:
                return _task_error(exc)
            except _Problem as exc:
                return problem_response(exc.status, exc.kind, exc.title, exc.detail, exc.field)
            except RequestValidationError as exc:
                return _invalid_request(exc)
            except StarletteHTTPException as exc:  # the host's owner dependency (401), a body
                # that is not JSON text (400)
                return problem_response(
                    exc.status_code,
                    f"http-{exc.status_code}",
                    _reason(exc.status_code),
                    str(exc.detail),
                    headers=exc.headers,
                )

        return route


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# -- preconditions --------------------------------------------------------------------


def _malformed(header: str, why: str) -> _Problem:
    return _Problem(400, "malformed-header", f"Malformed {header}", why, header)


def _failed(detail: str) -> _Problem:
    return _Problem(412, "precondition-failed", "Precondition failed", detail, "If-Match")


def _version(tag: str) -> int | None:
    """The version a strong tag names, or None for a tag this API never issues."""
    if tag.isascii() and tag.isdigit() and len(tag) <= 10 and str(int(tag)) == tag:
        number = int(tag)
        return number if 1 <= number <= MAX_VERSION else None
    return None


def expected_version(if_match: str | None) -> int | None:
    """The version an ``If-Match`` asks for: None for none or ``*`` (the task must
    exist); raises 400 for a value that is not an entity-tag list, 412 for one that
    can never match (weak tags never match strongly; tags this API never issued)."""
    if if_match is None:
        return None
    value = if_match.strip()
    if value == "*":
        return None
    if _ETAG_LIST.fullmatch(value) is None:
        raise _malformed("If-Match", 'must be * or entity tags such as "3" (the task\'s ETag)')
    versions = {
        version
        for weak, tag in _ETAG_ONE.findall(value)
        if not weak and (version := _version(tag)) is not None
    }
    if not versions:
        raise _failed(f'If-Match {value} can never match a task\'s ETag (a strong tag like "3")')
    if len(versions) > 1:
        raise _malformed("If-Match", "must name one version of the task")
    return versions.pop()


async def _conditional(write: Awaitable[TaskRead | None], expected: int | None) -> Any:
    """A write under ``If-Match``: a version conflict is 412, as RFC 9110 says."""
    try:
        return await write
    except TaskConflict as exc:
        if expected is None:
            raise
        raise _failed(str(exc)) from None


def held_versions(if_none_match: str | None) -> frozenset[int] | Literal["*"] | None:
    """The versions an ``If-None-Match`` names (weak comparison), ``"*"`` for any,
    None without the header; 400 when malformed."""
    if if_none_match is None:
        return None
    value = if_none_match.strip()
    if value == "*":
        return "*"
    if _ETAG_LIST.fullmatch(value) is None:
        raise _malformed("If-None-Match", 'must be * or entity tags such as "3"')
    return frozenset(
        version for _, tag in _ETAG_ONE.findall(value) if (version := _version(tag)) is not None
    )


# -- responses --------------------------------------------------------------------------


def _task_response(
    task: TaskRead, repo: TaskRepository | None, status: int = 200, location: str | None = None
) -> Response:
    headers = {"ETag": f'"{task.version}"'}
    if location is not None:
        headers["Location"] = location
    response = Response(
        task.model_dump_json().encode(),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )
    if repo is not None:
        _stamp(repo, response)
    return response


def _stamp(repo: TaskRepository, response: Response) -> None:
    """After a write: hand the client the token that makes its next reads see it."""
    token = repo.consistency_token
    if token is not None:
        response.headers[CONSISTENCY_HEADER] = token
        response.set_cookie(
            CONSISTENCY_COOKIE, token, max_age=CONSISTENCY_MAX_AGE, httponly=True, samesite="lax"
        )


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    schema = Problem.model_json_schema()
    described = {
        304: "Not modified: the task is at the version If-None-Match names",
        400: "A malformed If-Match, If-None-Match or Idempotency-Key, or a body that is "
        "not JSON text",
        404: "No such task for this owner",
        409: "A conflicting write (a client id or Idempotency-Key reused with other "
        "content; the task's last version)",
        412: "If-Match names another version than the task's",
        422: "Invalid input (body, query, path or owner)",
        428: "If-Match is required on this write",
        500: "The database refused the operation, or a stored row cannot be read",
        503: "The database is unreachable or busy",
        504: "The database did not answer in time",
    }
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        if status == 304:
            out[status] = {"description": described[status]}
        else:
            out[status] = {
                "description": described[status],
                "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}},
            }
    return out


_ALWAYS: Final = (422, 500, 503, 504)
_STR: Final[dict[str, Any]] = {"schema": {"type": "string"}}
_TOKEN_HEADER: Final[dict[str, Any]] = {
    CONSISTENCY_HEADER: {
        "description": "With read replicas: send it back (header or cookie) to read "
        "this write on the next request.",
        **_STR,
    }
}


def _ok(description: str, *, etag: bool = True, **headers: Any) -> dict[str, Any]:
    found: dict[str, Any] = dict(headers)
    if etag:
        found["ETag"] = {"description": 'The task\'s version, "<n>"', "required": True, **_STR}
    return {"description": description, "headers": found}


def _header_parameter(name: str, description: str, pattern: str | None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string", **({"pattern": pattern} if pattern else {})},
    }


# Optional headers are read from the request, not declared as FastAPI parameters:
# each declared parameter costs its own validation on every request (a third of the
# router's time per PATCH, profiled). OpenAPI still lists each one, with its grammar.
_TOKEN_PARAMETER: Final = _header_parameter(
    CONSISTENCY_HEADER,
    "The token of the client's last write (with read replicas); or the "
    f"{CONSISTENCY_COOKIE} cookie. Any text: one that is not todo_app's is no error, "
    "that request reads on the primary.",
    None,
)
_IF_MATCH_PARAMETER: Final = _header_parameter(
    "If-Match", 'The task\'s ETag ("<version>") this write expects, or *.', _ETAG_PATTERN
)
_IF_NONE_MATCH_PARAMETER: Final = _header_parameter(
    "If-None-Match", "ETags the client holds: 304 when the task is at one of them.", _ETAG_PATTERN
)
_IDEMPOTENCY_PARAMETER: Final = _header_parameter(
    "Idempotency-Key",
    "Makes retries safe: the same key returns the same task; the same key with "
    "another body is 409.",
    _KEY_PATTERN,
)


def _parameters(*found: dict[str, Any]) -> dict[str, Any]:
    return {"parameters": [_TOKEN_PARAMETER, *found]}


def _repository(owner_id: str, request: Request) -> TaskRepository:
    """The owner's repository, given the client's consistency token (header, else
    cookie). A token that is not one of ours is no error: those reads run on the
    primary."""
    headers = request.headers
    token = headers.get(CONSISTENCY_HEADER)
    if not token and "cookie" in headers:
        token = request.cookies.get(CONSISTENCY_COOKIE)
    return TaskRepository(owner_id, consistency=token)


def task_repository(
    owner: Callable[..., Awaitable[str] | str],
) -> Callable[..., Awaitable[TaskRepository]]:
    """A dependency for a host's own routes: the owner's ``TaskRepository``, given
    the client's consistency token as the router's routes are. Declare such routes on
    the router ``tasks_router`` returned, so that its errors are problem+json too."""

    async def repository(
        request: Request, owner_id: Annotated[str, Depends(owner)]
    ) -> TaskRepository:
        return _repository(owner_id, request)

    return repository


def tasks_router(
    owner: Callable[..., Awaitable[str] | str],
    *,
    require_if_match: bool = False,
    tags: Sequence[str] = ("tasks",),
    responses: Mapping[int | str, dict[str, Any]] | None = None,
) -> APIRouter:
    """The task API for the owner ``owner`` returns (a FastAPI dependency: the
    host's auth; it may raise ``HTTPException`` 401/403, answered as problem+json).

    Routes (relative to wherever it is mounted): ``GET /tasks``, ``POST /tasks``,
    ``GET|PATCH|DELETE /tasks/{task_id}``,
    ``POST /tasks/{task_id}/complete`` and ``/reopen``. ``require_if_match``: writes
    to a task without ``If-Match`` are 428. ``responses``: what the host's owner
    dependency may answer (say ``{401: {...}}``), added to every route's OpenAPI.
    """
    Owner = Annotated[str, Depends(owner)]
    TaskId = Annotated[uuid.UUID, Path(description="The task's id (a UUID).")]

    def condition(request: Request) -> int | None:
        if_match = request.headers.get("if-match")
        if if_match is None and require_if_match:
            raise _Problem(
                428, "precondition-required", "Precondition required",
                'send If-Match: "<version>" (the task\'s ETag)', "If-Match",
            )  # fmt: skip
        return expected_version(if_match)

    writes = (404, 409, 412, *((428,) if require_if_match else ()), 400, *_ALWAYS)
    write_parameters = _parameters(_IF_MATCH_PARAMETER)
    router = APIRouter(route_class=_ProblemRoute, tags=list(tags), responses=dict(responses or {}))

    @router.get(
        "/tasks",
        response_model=TaskPage,
        name="todo_app_list_tasks",
        responses={
            200: _ok(
                "One page; Link rel=next when there is another",
                etag=False,
                Link={"description": '<...>; rel="next"', **_STR},
            ),
            **_problems(*_ALWAYS),
        },
        openapi_extra=_parameters(),
    )
    async def list_tasks(
        request: Request,
        owner_id: Owner,
        status: TaskStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
        order: Literal["newest", "oldest"] = "newest",
    ) -> Response:
        repo = _repository(owner_id, request)
        page = await repo.list(status=status, limit=limit, cursor=cursor, order=order)
        response = Response(page.model_dump_json().encode(), media_type="application/json")
        if page.next_cursor is not None:
            query = {"limit": limit, "order": order, "cursor": page.next_cursor}
            if status is not None:
                query["status"] = status.value
            response.headers["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
        return response

    @router.post(
        "/tasks",
        status_code=201,
        response_model=TaskRead,
        name="todo_app_create_task",
        responses={
            201: _ok(
                "Created (or, for a repeated Idempotency-Key or id, the task the first "
                "request made)",
                Location={"description": "The task's URL", "required": True, **_STR},
                **_TOKEN_HEADER,
            ),
            **_problems(400, 409, *_ALWAYS),
        },
        openapi_extra=_parameters(_IDEMPOTENCY_PARAMETER),
    )
    async def create_task(request: Request, owner_id: Owner, data: TaskCreate) -> Response:
        repo = _repository(owner_id, request)
        idempotency_key = request.headers.get("idempotency-key")
        if idempotency_key is not None:
            key = idempotency_key.strip()
            if not re.fullmatch(_KEY_PATTERN, key):
                raise _malformed("Idempotency-Key", "must be 1 to 255 visible ASCII characters")
            derived = uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{repo.owner_id}\n{key}")
            if data.id is not None and data.id != derived:
                raise _Problem(
                    409, "idempotency-key-mismatch", "Idempotency-Key and id disagree",
                    "this Idempotency-Key names another task id: send the key or the id",
                    "id",
                )  # fmt: skip
            try:
                task = await repo.create(data.model_copy(update={"id": derived}))
            except TaskConflict:
                raise _Problem(
                    409, "idempotency-key-reused", "Idempotency-Key reused",
                    "this Idempotency-Key was used for a request with another body",
                    "Idempotency-Key",
                ) from None  # fmt: skip
        else:
            task = await repo.create(data)
        location = f"{request.url.path.rstrip('/')}/{task.id}"
        return _task_response(task, repo, 201, location)

    @router.get(
        "/tasks/{task_id}",
        response_model=TaskRead,
        name="todo_app_get_task",
        responses={200: _ok("The task"), **_problems(304, 400, 404, *_ALWAYS)},
        openapi_extra=_parameters(_IF_NONE_MATCH_PARAMETER),
    )
    async def get_task(request: Request, owner_id: Owner, task_id: TaskId) -> Response:
        held = held_versions(request.headers.get("if-none-match"))  # 400 before any query
        task = await _repository(owner_id, request).get(task_id)
        if held is not None and (held == "*" or task.version in held):
            return Response(status_code=304, headers={"ETag": f'"{task.version}"'})
        return _task_response(task, None)

    @router.patch(
        "/tasks/{task_id}",
        response_model=TaskRead,
        name="todo_app_update_task",
        responses={200: _ok("The task as changed", **_TOKEN_HEADER), **_problems(*writes)},
        openapi_extra=write_parameters,
    )
    async def update_task(
        request: Request, owner_id: Owner, task_id: TaskId, data: TaskUpdate
    ) -> Response:
        repo = _repository(owner_id, request)
        expected = condition(request)
        task = await _conditional(repo.update(task_id, data, expected_version=expected), expected)
        return _task_response(task, repo)

    for action in ("complete", "reopen"):
        _status_route(router, action, Owner, TaskId, condition, writes, write_parameters)

    @router.delete(
        "/tasks/{task_id}",
        status_code=204,
        response_class=Response,
        name="todo_app_delete_task",
        responses={204: {"description": "Deleted", "headers": _TOKEN_HEADER},
                   **_problems(*writes)},
        openapi_extra=write_parameters,
    )  # fmt: skip
    async def delete_task(request: Request, owner_id: Owner, task_id: TaskId) -> Response:
        repo = _repository(owner_id, request)
        expected = condition(request)
        await _conditional(repo.delete(task_id, expected_version=expected), expected)
        response = Response(status_code=204)
        _stamp(repo, response)
        return response

    _refuse_other_methods(router)
    return router


def _refuse_other_methods(router: APIRouter) -> None:
    """405 with the path's whole ``Allow`` list for any other method (Starlette would
    name the methods of the first route of the path only)."""
    allowed: dict[str, set[str]] = {}
    for route in router.routes:
        if isinstance(route, APIRoute):
            allowed.setdefault(route.path, set()).update(route.methods or ())
    for path, methods in allowed.items():
        if "GET" in methods:
            methods.add("HEAD")
        others = sorted({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"} - methods)
        router.add_api_route(
            path, _not_allowed(", ".join(sorted(methods))), methods=others, include_in_schema=False
        )


def _not_allowed(allow: str) -> Callable[[], Awaitable[Response]]:
    async def not_allowed() -> Response:
        return problem_response(
            405, "method-not-allowed", "Method not allowed", f"allowed: {allow}",
            headers={"Allow": allow},
        )  # fmt: skip

    return not_allowed


def _status_route(
    router: APIRouter,
    action: Literal["complete", "reopen"],
    Owner: Any,
    TaskId: Any,
    condition: Callable[[Request], int | None],
    writes: tuple[int, ...],
    parameters: dict[str, Any],
) -> None:
    async def change_status(request: Request, owner_id: Owner, task_id: TaskId) -> Response:
        repo = _repository(owner_id, request)
        method = repo.complete if action == "complete" else repo.reopen
        expected = condition(request)
        task = await _conditional(method(task_id, expected_version=expected), expected)
        return _task_response(task, repo)

    router.add_api_route(
        f"/tasks/{{task_id}}/{action}",
        change_status,
        methods=["POST"],
        response_model=TaskRead,
        name=f"todo_app_{action}_task",
        summary=f"{action.capitalize()} a task",
        responses={200: _ok("The task as changed", **_TOKEN_HEADER), **_problems(*writes)},
        openapi_extra=parameters,
    )
