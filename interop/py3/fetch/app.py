"""fetch (WASI 0.3): GETs the URL in the `x-url` request header through
`wasi:http/client@0.3.0` `send` and answers 200 with the origin's body and
`x-status`, or 502 with the error code the host reported."""

from typing import Optional
from urllib.parse import urlparse

import componentize_py_async_support
import wit_world
from componentize_py_async_support.streams import ByteStreamWriter
from componentize_py_async_support.futures import FutureReader
from componentize_py_types import Err, Ok, Result
from wit_world import exports
from wit_world.imports import client
from wit_world.imports.wasi_http_types import (
    ErrorCode,
    Fields,
    Request,
    Response,
    Scheme_Http,
    Scheme_Https,
)


class Handler(exports.Handler):
    async def handle(self, request: Request) -> Response:
        target = request.get_headers().get("x-url")
        if not target:
            return respond(400, [], b"missing x-url\n")
        url = urlparse(target[0].decode())
        outgoing = Request.new(Fields(), None, no_trailers(), None)[0]
        outgoing.set_scheme(Scheme_Https() if url.scheme == "https" else Scheme_Http())
        outgoing.set_authority(url.netloc)
        outgoing.set_path_with_query((url.path or "/") + ("?" + url.query if url.query else ""))
        try:
            upstream = await client.send(outgoing)
        except Err as e:  # the error-code the host reported
            return respond(502, [], f"fetch failed: {e.value!r}\n".encode())
        status = upstream.get_status_code()
        body, trailers = Response.consume_body(upstream, unit_future())
        content = b""
        with body:
            while not body.writer_dropped:
                content += await body.read(64 * 1024)
        result = await trailers.read()
        if isinstance(result, Err):
            return respond(502, [], f"fetch body failed: {result.value!r}\n".encode())
        return respond(200, [("x-status", str(status).encode())], content)


def respond(status: int, headers, content: bytes) -> Response:
    tx, rx = wit_world.byte_stream()
    componentize_py_async_support.spawn(write_and_close(tx, content))
    response = Response.new(Fields.from_list(headers), rx, no_trailers())[0]
    response.set_status_code(status)
    return response


async def write_and_close(tx: ByteStreamWriter, content: bytes) -> None:
    with tx:
        await tx.write_all(content)


def no_trailers() -> FutureReader[Result[Optional[Fields], ErrorCode]]:
    return wit_world.result_option_wasi_http_types_fields_wasi_http_types_error_code_future(
        lambda: Ok(None)
    )[1]


def unit_future() -> FutureReader[Result[None, ErrorCode]]:
    return wit_world.result_unit_wasi_http_types_error_code_future(lambda: Ok(None))[1]
