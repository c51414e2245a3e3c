/* hello: every request gets 200 "Hello, wasi:http!\n". */
#include "common.h"

static const char BODY[] = "Hello, wasi:http!\n";

void exports_wasi_http_incoming_handler_handle(own_incoming_request_t request,
                                               own_response_outparam_t response_out) {
    wasi_http_types_incoming_request_drop_own(request);

    hdrs_t h = {0};
    if (!hdrs_add_str(&h, "content-type", "text/plain; charset=utf-8") ||
        !hdrs_add_u64(&h, "content-length", sizeof(BODY) - 1)) {
        hdrs_free(&h);
        respond_error(response_out, "guest: out of memory");
        return;
    }
    respond(response_out, 200, &h, BODY, sizeof(BODY) - 1);
}
