"""FastAPI app answering what sweeps are doing and which configs won, read-only.

Every answer comes from one ``Query`` (workspace or MLflow source), so it matches
``cryotune status`` and ``cryotune best``. Unknown names answer 404 listing what exists, bad
input 422, and a source that cannot be read 503: client input never yields a 500. With a
token, /health, /openapi.json and /docs stay open (they hold no sweep data, and the docs page
needs the schema to offer its "Authorize" button).
"""

# No ``from __future__ import annotations``: FastAPI reads route signatures at runtime, and the
# token guard's signature names a closure variable.
import hmac
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request
from fastapi import Query as QueryParameter
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

import cryotune
from cryotune.api.schemas import Health, Problem
from cryotune.errors import CryotuneError, NotFoundError
from cryotune.query.models import (
    BestRecord,
    Leaderboard,
    SweepDetail,
    SweepState,
    SweepSummary,
)
from cryotune.query.service import (
    DEFAULT_PAGE,
    MAX_PAGE,
    PAGE_TOKEN_MAX,
    PAGE_TOKEN_PATTERN,
    PageTokenError,
    Query,
)
from cryotune.report.models import Report
from cryotune.report.render import MEDIA_TYPES, render
from cryotune.sweep.workspace import SWEEP_NAME_PATTERN

NAME_PATTERN = SWEEP_NAME_PATTERN
SweepName = Annotated[str, Path(pattern=NAME_PATTERN, max_length=128, description="sweep name")]
DatasetKey = Annotated[
    str, Path(pattern=NAME_PATTERN, max_length=64, description="dataset key, e.g. glid")
]
ModelKey = Annotated[
    str, Path(pattern=NAME_PATTERN, max_length=64, description="model key, e.g. unet")
]

ReportFormat = Annotated[
    Literal["json", "md", "csv", "latex"],
    QueryParameter(alias="format", description="json (default), or md, csv, latex as text"),
]
_REPORT_TEXT = {
    200: {
        "description": "the report: JSON, or with ?format= markdown, CSV or LaTeX",
        "content": {MEDIA_TYPES[f]: {"schema": {"type": "string"}} for f in ("md", "csv", "latex")},
    }
}
_NOT_FOUND = {404: {"model": Problem, "description": "unknown name; lists what exists"}}
_UNAVAILABLE = {503: {"model": Problem, "description": "the source could not be read"}}
_UNAUTHORIZED = {401: {"model": Problem, "description": "missing or wrong bearer token"}}
NEXT_PAGE_HEADER = "X-Next-Page-Token"
Limit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE, description="sweeps per page (by name)")]
PageToken = Annotated[
    str | None,
    QueryParameter(
        pattern=PAGE_TOKEN_PATTERN,
        max_length=PAGE_TOKEN_MAX,
        description=f"the {NEXT_PAGE_HEADER} header of the previous page, for the next one",
    ),
]


def create_app(query: Query, token: str | None = None) -> FastAPI:
    """The API over ``query``; with a ``token`` every route but /health needs
    ``Authorization: Bearer TOKEN``."""
    app = FastAPI(
        title="cryotune",
        version=cryotune.__version__,
        description="Sweeps, their progress and the best finetuning configs per dataset.",
    )
    guard = _bearer_guard(token) if token else []
    data = APIRouter(
        dependencies=guard, responses={**_UNAVAILABLE, **_UNAUTHORIZED} if token else _UNAVAILABLE
    )

    @app.get(
        "/health",
        response_model=Health,
        responses={422: {"description": "unknown query parameter"}},
        dependencies=[_known_query()],
        tags=["service"],
    )
    def health() -> Health:
        return Health(version=cryotune.__version__, source=query.source.kind)

    @data.get(
        "/sweeps",
        response_model=list[SweepSummary],
        dependencies=[_known_query("state", "limit", "page_token")],
        tags=["sweeps"],
    )
    def sweeps(
        request: Request,
        response: Response,
        state: SweepState | None = None,
        limit: Limit = DEFAULT_PAGE,
        page_token: PageToken = None,
    ) -> list[SweepSummary]:
        """Sweeps by name, a page at a time: state, datasets, models, trial counts, start and
        last update. When more follow, the X-Next-Page-Token header (and a Link rel="next")
        asks for them."""
        try:
            page = query.sweep_page(state, limit, page_token)
        except PageTokenError as exc:
            raise _invalid("page_token", str(exc), page_token) from None
        if page.next_page_token is not None:
            response.headers[NEXT_PAGE_HEADER] = page.next_page_token
            following = request.url.include_query_params(page_token=page.next_page_token)
            response.headers["Link"] = f'<{following}>; rel="next"'
        return page.sweeps

    @data.get(
        "/sweeps/{name}",
        response_model=SweepDetail,
        responses=_NOT_FOUND,
        dependencies=[_known_query()],
        tags=["sweeps"],
    )
    def sweep(name: SweepName) -> SweepDetail:
        """One sweep per pair: trial counts by state, best val mIoU so far, best config."""
        return query.sweep(name)

    @data.get(
        "/best/{dataset}",
        response_model=Leaderboard,
        responses=_NOT_FOUND,
        dependencies=[_known_query()],
        tags=["best"],
    )
    def leaderboard(dataset: DatasetKey) -> Leaderboard:
        """Each model's best result on a dataset, with the paper's frozen-encoder mIoU."""
        return query.leaderboard(dataset)

    @data.get(
        "/best/{dataset}/{model}",
        response_model=BestRecord,
        responses=_NOT_FOUND,
        dependencies=[_known_query()],
        tags=["best"],
    )
    def best(dataset: DatasetKey, model: ModelKey) -> BestRecord:
        """The full best-config record, with the `cryotune train` command that repeats it."""
        return query.best(dataset, model)

    @data.get(
        "/report/{sweep}",
        response_model=Report,
        responses={**_NOT_FOUND, **_REPORT_TEXT},
        dependencies=[_known_query("format")],
        tags=["report"],
    )
    def report(sweep: SweepName, fmt: ReportFormat = "json"):
        """The sweep's results table as the paper prints it: tuned test mIoU per dataset and
        model beside the paper's, the difference, averages, and cells missing, running or
        failed."""
        found = query.report(sweep)
        if fmt == "json":
            return found
        return Response(render(found, fmt), media_type=MEDIA_TYPES[fmt])

    app.include_router(data)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(CryotuneError, _unavailable)
    return app


def _known_query(*names: str):
    """Refuse query parameters a route does not take: a typo (``?stat=running``) answers 422
    rather than being ignored."""

    def check(request: Request) -> None:
        unknown = [key for key in request.query_params if key not in names]
        if unknown:
            known = ", ".join(names) if names else "none"
            raise RequestValidationError(
                [
                    {
                        "type": "extra_forbidden",
                        "loc": ("query", key),
                        "msg": f"unknown query parameter; this route takes: {known}",
                        "input": request.query_params[key],
                    }
                    for key in unknown
                ]
            )

    return Depends(check)


def _invalid(name: str, message: str, value) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", name), "msg": message, "input": value}]
    )


def _bearer_guard(token: str) -> list:
    expected = token.encode()
    scheme = HTTPBearer(auto_error=False, description="the server's CRYOTUNE_API_TOKEN")

    def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(scheme)],
    ) -> None:
        if credentials is None:
            raise HTTPException(
                401, "this server needs Authorization: Bearer TOKEN", {"WWW-Authenticate": "Bearer"}
            )
        if not hmac.compare_digest(credentials.credentials.encode(), expected):
            raise HTTPException(
                401, "wrong bearer token", {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )

    return [Depends(require_token)]


def _not_found(request: Request, exc: NotFoundError) -> JSONResponse:
    body = Problem(detail=str(exc), kind=exc.kind, name=exc.name, existing=exc.existing)
    return JSONResponse(body.model_dump(), status_code=404)


def _unavailable(request: Request, exc: CryotuneError) -> JSONResponse:
    return JSONResponse(Problem(detail=str(exc)).model_dump(), status_code=503)
