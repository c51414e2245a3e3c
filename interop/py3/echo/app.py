"""echo (WASI 0.3): streams the request body back as it arrives (each chunk read
from the request's `stream<u8>` is written to the response's), and describes the
request in headers: `x-echo-method`, `x-echo-path`, and `x-echo-<name>` per
request header. `/length` instead reads the whole body and answers with its size."""

from typing import Optional

import componentize_py_async_support
import wit_world
from componentize_py_async_support.streams import ByteStreamReader, ByteStreamWriter
from componentize_py_async_support.futures import FutureReader
from componentize_py_types import Ok, Result
from wit_world import exports
from wit_world.imports.wasi_http_types import (
    ErrorCode,
    Fields,
    Method_Other,
    Request,
    Response,
)


class Handler(exports.Handler):
    async def handle(self, request: Request) -> Response:
        method = request.get_method()
        path = request.get_path_with_query() or "/"
        entries = request.get_headers().copy_all()
        body, _trailers = Request.consume_body(request, unit_future())
        if path == "/length":
            total = 0
            with body:
                while not body.writer_dropped:
                    total += len(await body.read(64 * 1024))
            return respond([("content-type", b"text/plain")], f"{total}\n".encode())
        if isinstance(method, Method_Other):
            name = method.value
        else:
            name = type(method).__name__.removeprefix("Method_").upper()
        headers = [("x-echo-method", name.encode()), ("x-echo-path", path.encode())]
        headers += [(f"x-echo-{n}", v) for n, v in entries]
        tx, rx = wit_world.byte_stream()
        componentize_py_async_support.spawn(pump(body, tx))
        return Response.new(Fields.from_list(headers), rx, no_trailers())[0]


async def pump(body: ByteStreamReader, tx: ByteStreamWriter) -> None:
    with body, tx:
        while not body.writer_dropped and not tx.reader_dropped:
            chunk = await body.read(64 * 1024)
            if chunk:
                await tx.write_all(chunk)


def respond(headers, content: bytes) -> Response:
    tx, rx = wit_world.byte_stream()
    componentize_py_async_support.spawn(write_and_close(tx, content))
    return Response.new(Fields.from_list(headers), rx, no_trailers())[0]


async def write_and_close(tx: ByteStreamWriter, content: bytes) -> None:
    with tx:
        await tx.write_all(content)


def no_trailers() -> FutureReader[Result[Optional[Fields], ErrorCode]]:
    return wit_world.result_option_wasi_http_types_fields_wasi_http_types_error_code_future(
        lambda: Ok(None)
    )[1]


def unit_future() -> FutureReader[Result[None, ErrorCode]]:
    return wit_world.result_unit_wasi_http_types_error_code_future(lambda: Ok(None))[1]
