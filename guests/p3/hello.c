/*
 * p3-hello (WASI 0.3): every request gets 200 with
 *   content-type: text/plain; charset=utf-8
 *   content-length: 18
 * and the body "Hello, wasi:http!\n" (no trailers).
 */
#include "common.h"

static const char BODY[] = "Hello, wasi:http!\n";

void guest_handle(task_t *t, own_request_t request) {
    wasi_http_types_request_drop_own(request);

    hdrs_t h = {0};
    if (!hdrs_add_str(&h, "content-type", "text/plain; charset=utf-8") ||
        !hdrs_add_u64(&h, "content-length", sizeof(BODY) - 1)) {
        hdrs_free(&h);
        task_return_internal(t, "guest: out of memory");
        return;
    }
    respond(t, 200, &h, BODY, sizeof(BODY) - 1);
}
