"""What every client API route shares: the key check that counts the caller against its limit (and puts
the rate headers on the answer), and the error body in the booth's words."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.responses import JSONResponse

from boothgate.api.live import ApiError
from boothgate.operator.api_keys import Caller, KeyRefused, OverLimit
from boothgate.web.deps import ServicesDep


async def require_key(request: Request, response: Response, services: ServicesDep) -> Caller:
    """The caller's key, counted against its per-minute limit (the rate headers go on every answer)."""
    keys = services.api_keys
    try:
        caller = await keys.authenticate(request.headers.get("x-api-key"))
        headers = keys.count_request(caller)
    except KeyRefused as exc:
        raise ApiError(401, "unauthorized", exc.message, {"WWW-Authenticate": 'ApiKey header="X-API-Key"'}) from None
    except OverLimit as exc:
        raise ApiError(429, exc.code, exc.message, exc.headers) from None
    response.headers.update(headers)
    request.state.rate_headers = headers
    return caller


KeyDep = Annotated[Caller, Depends(require_key)]


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The booth's error body, `{"error": code, "message": text}`."""
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)
