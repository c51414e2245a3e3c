"""fetch: GETs the URL in the `x-url` request header (asyncio) and answers 200 with
the upstream body and `x-upstream-status`, or 502 with the error."""

import asyncio
from urllib.parse import urlparse

import poll_loop
from componentize_py_types import Ok
from poll_loop import PollLoop, Sink, Stream
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingRequest,
    OutgoingResponse,
    ResponseOutparam,
    Scheme_Http,
    Scheme_Https,
)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        loop = PollLoop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(handle_async(request, response_out))


async def handle_async(request: IncomingRequest, response_out: ResponseOutparam) -> None:
    target = next((v for n, v in request.headers().entries() if n == "x-url"), None)
    if target is None:
        await respond(response_out, 400, [], b"missing x-url\n")
        return
    url = urlparse(target.decode())
    outgoing = OutgoingRequest(Fields())
    outgoing.set_scheme(Scheme_Https() if url.scheme == "https" else Scheme_Http())
    outgoing.set_authority(url.netloc)
    outgoing.set_path_with_query(url.path + ("?" + url.query if url.query else "") or "/")
    try:
        upstream = await poll_loop.send(outgoing)
    except Exception as e:  # the error-code the host reported
        await respond(response_out, 502, [], f"fetch failed: {e!r}\n".encode())
        return
    status = upstream.status()
    body = Stream(upstream.consume())
    content = b""
    while (chunk := await body.next()) is not None:
        content += chunk
    await respond(response_out, 200, [("x-upstream-status", str(status).encode())], content)


async def respond(response_out: ResponseOutparam, status: int, headers, content: bytes) -> None:
    response = OutgoingResponse(Fields.from_list(headers))
    response.set_status_code(status)
    sink = Sink(response.body())
    ResponseOutparam.set(response_out, Ok(response))
    await sink.send(content)
    sink.close()
