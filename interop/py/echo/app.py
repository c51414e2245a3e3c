"""echo: streams the request body back with asyncio, and describes the request in
headers: `x-echo-method`, `x-echo-path`, and `x-echo-<name>` per request header.
`/length` instead reads the whole body (asyncio) and answers with its size."""

import asyncio

from componentize_py_types import Ok
from poll_loop import PollLoop, Sink, Stream
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingResponse,
    ResponseOutparam,
)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        loop = PollLoop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(handle_async(request, response_out))


async def handle_async(request: IncomingRequest, response_out: ResponseOutparam) -> None:
    path = request.path_with_query() or "/"
    body = Stream(request.consume())
    if path == "/length":
        total = 0
        while (chunk := await body.next()) is not None:
            total += len(chunk)
        await respond(response_out, [("content-type", b"text/plain")], f"{total}\n".encode())
        return
    method = type(request.method()).__name__.removeprefix("Method_").upper()
    headers = [("x-echo-method", method.encode()), ("x-echo-path", path.encode())]
    for name, value in request.headers().entries():
        headers.append((f"x-echo-{name}", value))
    response = OutgoingResponse(Fields.from_list(headers))
    sink = Sink(response.body())
    ResponseOutparam.set(response_out, Ok(response))
    while (chunk := await body.next()) is not None:
        await sink.send(chunk)
    sink.close()


async def respond(response_out: ResponseOutparam, headers, content: bytes) -> None:
    response = OutgoingResponse(Fields.from_list(headers))
    sink = Sink(response.body())
    ResponseOutparam.set(response_out, Ok(response))
    await sink.send(content)
    sink.close()
