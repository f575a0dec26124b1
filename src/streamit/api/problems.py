"""JSON error bodies for every failure the API reports (RFC 9457 "problem details")."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from streamit.api.schemas import ProblemOut
from streamit.db import DatabaseUnavailable
from streamit.errors import InvalidInput, InvalidTransition, NotFound, SlugTaken

PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A ``problem+json`` response; ``title`` is the standard reason phrase of ``status``."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only plain fields: pydantic's ``ctx``/``input`` may hold objects that are not JSON and may
    # echo secrets the client sent.
    return [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(422, "The request is not valid.", errors=_validation_errors(exc))


async def _on_http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    return problem_response(exc.status_code, detail, headers=exc.headers)


async def _on_not_found(_request: Request, exc: Exception) -> JSONResponse:
    return problem_response(404, str(exc))


async def _on_invalid_input(_request: Request, exc: Exception) -> JSONResponse:
    return problem_response(422, str(exc))


async def _on_conflict(_request: Request, exc: Exception) -> JSONResponse:
    return problem_response(409, str(exc))


async def _on_database_error(_request: Request, _exc: Exception) -> JSONResponse:
    # The driver's message can include host names or SQL; the client only needs to retry later.
    return problem_response(503, "The database is unavailable.", headers={"Retry-After": "5"})


def problem_docs(description: str) -> dict[str, Any]:
    """An OpenAPI response entry for a problem body served as ``application/problem+json``."""
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": ProblemOut.model_json_schema()}},
    }


def install_error_handlers(app: FastAPI) -> None:
    """Make ``app`` answer every error (401, 404, 405, 409, 422, database down …) with a problem body."""
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(NotFound, _on_not_found)
    app.add_exception_handler(InvalidInput, _on_invalid_input)
    app.add_exception_handler(SlugTaken, _on_conflict)
    app.add_exception_handler(InvalidTransition, _on_conflict)
    app.add_exception_handler(DatabaseUnavailable, _on_database_error)
