"""sleepy (WASI 0.3): waits `x-delay-ms` ms (default 200) with
`wasi:clocks/monotonic-clock@0.3.0` `wait-for`, then answers 200 with
`<instance-id> <in-flight>\n`: a random id chosen once per instance, and how many
`handle` calls of this instance are running at that moment. With concurrent
requests served by one instance, in-flight goes above 1.

The id is picked on the first call, not at import: componentize-py runs the
module's top level at build time and snapshots it, so an import-time value
would be the same in every instance."""

from typing import Optional

import componentize_py_async_support
import wit_world
from componentize_py_async_support.streams import ByteStreamWriter
from componentize_py_async_support.futures import FutureReader
from componentize_py_types import Ok, Result
from wit_world import exports
from wit_world.imports import monotonic_clock
from wit_world.imports import random as wasi_random
from wit_world.imports.wasi_http_types import ErrorCode, Fields, Request, Response

INSTANCE_ID: Optional[int] = None
IN_FLIGHT = 0


class Handler(exports.Handler):
    async def handle(self, request: Request) -> Response:
        global INSTANCE_ID, IN_FLIGHT
        if INSTANCE_ID is None:
            INSTANCE_ID = wasi_random.get_random_u64() % 1_000_000_000
        delay = request.get_headers().get("x-delay-ms")
        delay_ms = int(delay[0]) if delay else 200
        IN_FLIGHT += 1
        try:
            await monotonic_clock.wait_for(delay_ms * 1_000_000)
            in_flight = IN_FLIGHT
        finally:
            IN_FLIGHT -= 1
        return respond(f"{INSTANCE_ID} {in_flight}\n".encode())


def respond(content: bytes) -> Response:
    tx, rx = wit_world.byte_stream()
    componentize_py_async_support.spawn(write_and_close(tx, content))
    return Response.new(Fields.from_list([("content-type", b"text/plain")]), rx, no_trailers())[0]


async def write_and_close(tx: ByteStreamWriter, content: bytes) -> None:
    with tx:
        await tx.write_all(content)


def no_trailers() -> FutureReader[Result[Optional[Fields], ErrorCode]]:
    return wit_world.result_option_wasi_http_types_fields_wasi_http_types_error_code_future(
        lambda: Ok(None)
    )[1]
