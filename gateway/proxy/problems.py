"""Turn a :class:`Problem` into an ``application/problem+json`` response."""

from __future__ import annotations

import orjson
from aiohttp import web

from gateway.policy.errors import Problem

PROBLEM_JSON = "application/problem+json"


def problem_response(problem: Problem) -> web.Response:
    """The RFC 9457 response for a problem, with its extra headers."""
    response = web.Response(
        status=problem.status,
        body=orjson.dumps(problem.body()),
        headers=problem.headers,
    )
    response.content_type = PROBLEM_JSON
    return response


def http_problem(exc: web.HTTPException) -> Problem:
    """aiohttp's own HTTP errors (404, 405, 413...) as problems."""
    problem = Problem(exc.reason or "error")
    problem.status, problem.title = exc.status, exc.reason or "Error"
    problem.type_slug = "http-" + str(exc.status)
    return problem
