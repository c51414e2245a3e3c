"""hello (WASI 0.3): answers every request with 200 and "Hello, wasi:http!\n".

The response body is a `stream<u8>`: the handler returns the response with the
readable end, and a task spawned on the same component-model task writes the
bytes after `handle` has returned."""

from typing import Optional

import componentize_py_async_support
import wit_world
from componentize_py_async_support.streams import ByteStreamWriter
from componentize_py_async_support.futures import FutureReader
from componentize_py_types import Ok, Result
from wit_world import exports
from wit_world.imports.wasi_http_types import ErrorCode, Fields, Request, Response


class Handler(exports.Handler):
    async def handle(self, request: Request) -> Response:
        return respond(200, [("content-type", b"text/plain")], b"Hello, wasi:http!\n")


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
