/*
 * p3-fault (WASI 0.3): misbehaves on purpose, selected by the request path
 * (query ignored).
 *
 *   /trap-before     trap before returning a response
 *   /trap-after      return a 200 response, write "partial" to its body
 *                    stream, and trap once that write completed
 *   /trap-mid-body   return a 200 response, write "partial" to its body
 *                    stream, wait 50 ms (the response is on its way), then
 *                    trap: the client sees a 200 whose body is cut off
 *   /busy-loop       spin forever inside handle (never returns)
 *   /alloc           malloc 1 MiB blocks until malloc fails (or 4096 MiB),
 *                    free them, then 200 with body "<MiB allocated>\n"
 *   /slow-body       200, then write "x" every 100 ms, `x-chunks` (request
 *                    header, default 50) times, then end the body (trailers
 *                    ok(none))
 *   /hold            wait `x-hold-ms` ms (request header; default: forever)
 *                    before responding 200 "held\n"; the wait is a
 *                    monotonic-clock subtask, so other requests on the
 *                    instance proceed meanwhile
 *   /drop-streams    consume the request body and drop its stream (and
 *                    trailers future) without reading; respond 200 with a body
 *                    stream to which it writes "early", then drop the stream
 *                    writer and resolve the trailers future with ok(none)
 *   /overflow        content-length: 5, writes 10 bytes ("0123456789"), ends
 *   /underflow       content-length: 10, writes 5 bytes ("01234"), ends
 *   /after-response  respond 200 "done\n" at once (task.return), then keep
 *                    working in the same task: wait `x-after-ms` ms (default
 *                    200), write the line "after response" to
 *                    wasi:cli/stdout@0.3.0, and exit
 *   /trap-later      respond 200 "ok\n" at once, then wait `x-after-ms` ms
 *                    (default 300) and trap
 *   /print           write the line "guest says hello" to stdout (waiting for
 *                    the write to complete), then 200 "printed\n"
 *   /huge-headers    append 1 KiB header values (x-h-<i>) to a fields until
 *                    the host refuses (or 100000 were appended); 200 with body
 *                    "<appended>\n<header-error case name>\n" (expected:
 *                    size-exceeded; "none" if never refused)
 *   /status-1xx      returns a response with status 103 (and an empty body)
 *                    as the final response (the host must answer 500)
 *   /env             200 with body "<value>\n" of the environment variable
 *                    named by the `x-env` request header
 *                    (wasi:cli/environment get-environment), or 404 "unset\n"
 *   /error-code      return err(HTTP-request-denied) from handle
 *   anything else    404 "unknown fault\n"
 *
 * An unparsable x-chunks / x-hold-ms / x-after-ms: 400 "bad <header>\n".
 */
#include "common.h"

#include <stdlib.h>
#include <string.h>

/* Responds 200 with `text` if it was built completely, else internal-error;
 * frees `text` either way. */
static void respond_built(task_t *t, buf_t *text, bool built) {
    if (!built) {
        buf_free(text);
        task_return_internal(t, "guest: out of memory");
        return;
    }
    hdrs_t h = {0};
    respond(t, 200, &h, text->ptr, text->len);
    buf_free(text);
}

/* ------------------------------------------------------ trap-after ----- */

typedef struct {
    body_out_t out;
    write_op_t wr;
    uint64_t left;
} body_state_t;

static void trap_after_written(task_t *t, void *arg, bool ok) {
    __builtin_trap();
}

static void trap_after(task_t *t) {
    body_state_t *b = task_alloc(t, sizeof(*b));
    hdrs_t h = {0};
    if (!respond_stream(t, 200, &h, 0, &b->out)) {
        return;
    }
    write_all(t, &b->wr, b->out.body, "partial", 7, trap_after_written, b);
}

static void trap_now(task_t *t, void *arg, uint32_t code) {
    __builtin_trap();
}

static void trap_mid_written(task_t *t, void *arg, bool ok) {
    task_sleep_ms(t, 50, trap_now, arg);
}

static void trap_mid_body(task_t *t) {
    body_state_t *b = task_alloc(t, sizeof(*b));
    hdrs_t h = {0};
    if (!respond_stream(t, 200, &h, 0, &b->out)) {
        return;
    }
    write_all(t, &b->wr, b->out.body, "partial", 7, trap_mid_written, b);
}

/* ------------------------------------------------------- slow-body ----- */

static void slow_tick(task_t *t, void *arg, uint32_t code);

static void slow_written(task_t *t, void *arg, bool ok) {
    body_state_t *b = arg;
    if (!ok) {
        wasi_http_types_stream_u8_drop_writable(b->out.body);
        write_trailers_internal_error(t, b->out.trailers);
        return;
    }
    b->left--;
    if (b->left == 0) {
        body_out_end_ok(t, &b->out);
        return;
    }
    task_sleep_ms(t, 100, slow_tick, b);
}

static void slow_tick(task_t *t, void *arg, uint32_t code) {
    body_state_t *b = arg;
    write_all(t, &b->wr, b->out.body, "x", 1, slow_written, b);
}

static void slow_body(task_t *t, uint64_t chunks) {
    body_state_t *b = task_alloc(t, sizeof(*b));
    hdrs_t h = {0};
    if (!respond_stream(t, 200, &h, 0, &b->out)) {
        return;
    }
    if (chunks == 0) {
        body_out_end_ok(t, &b->out);
        return;
    }
    b->left = chunks;
    task_sleep_ms(t, 100, slow_tick, b);
}

/* ------------------------------------------------------------ hold ----- */

#define HOUR_MS ((uint64_t)3600 * 1000)

static void hold_done(task_t *t, void *arg, uint32_t code) {
    respond_text(t, 200, "held\n");
}

static void hold_forever(task_t *t, void *arg, uint32_t code) {
    task_sleep_ms(t, HOUR_MS, hold_forever, NULL);
}

/* ---------------------------------------------------- drop-streams ----- */

static void drop_streams_written(task_t *t, void *arg, bool ok) {
    body_state_t *b = arg;
    body_out_end_ok(t, &b->out);
}

static void drop_streams(task_t *t, own_request_t request) {
    body_in_t in;
    consume_request(t, request, &in);
    body_in_drop(&in);
    body_state_t *b = task_alloc(t, sizeof(*b));
    hdrs_t h = {0};
    if (!respond_stream(t, 200, &h, 0, &b->out)) {
        return;
    }
    write_all(t, &b->wr, b->out.body, "early", 5, drop_streams_written, b);
}

/* ------------------------------------------------------- overflow ------ */

static void length_mismatch(task_t *t, uint64_t declared, const char *body) {
    hdrs_t h = {0};
    if (!hdrs_add_u64(&h, "content-length", declared)) {
        hdrs_free(&h);
        task_return_internal(t, "guest: out of memory");
        return;
    }
    respond(t, 200, &h, body, strlen(body));
}

/* ------------------------------------------------- after-response ------ */

static void after_printed(task_t *t, void *arg, bool ok) {
    /* Nothing left: the task exits. */
}

static void after_wait(task_t *t, void *arg, uint32_t code) {
    print_stdout(t, "after response\n", after_printed, NULL);
}

static void trap_later(task_t *t, void *arg, uint32_t code) {
    __builtin_trap();
}

/* ----------------------------------------------------------- print ----- */

static void printed(task_t *t, void *arg, bool ok) {
    respond_text(t, 200, "printed\n");
}

/* ---------------------------------------------------- huge-headers ----- */

static void huge_headers(task_t *t) {
    static uint8_t value[1024];
    memset(value, 'v', sizeof(value));
    own_fields_t f = wasi_http_types_constructor_fields();
    borrow_fields_t fb = wasi_http_types_borrow_fields(f);
    const char *result = "none";
    uint64_t i = 0;
    for (; i < 100000; i++) {
        buf_t name = {0};
        if (!buf_append_str(&name, "x-h-") || !buf_append_u64(&name, i)) {
            buf_free(&name);
            result = "guest-out-of-memory";
            break;
        }
        service_string_t n = {name.ptr, name.len};
        wasi_http_types_field_value_t v = {value, sizeof(value)};
        header_error_t err;
        bool ok = wasi_http_types_method_fields_append(fb, &n, &v, &err);
        buf_free(&name);
        if (!ok) {
            result = header_error_name(&err);
            wasi_http_types_header_error_free(&err);
            break;
        }
    }
    wasi_http_types_fields_drop_own(f);

    buf_t body = {0};
    bool built = buf_append_u64(&body, i) && buf_append_str(&body, "\n") &&
                 buf_append_str(&body, result) && buf_append_str(&body, "\n");
    respond_built(t, &body, built);
}

/* ------------------------------------------------------------ misc ----- */

static void busy_loop(void) {
    volatile uint64_t counter = 0;
    for (;;) {
        counter = counter + 1;
    }
}

static void alloc(task_t *t) {
    const size_t block = (size_t)1 << 20;
    /* Blocks are chained through their first word so they can all be freed
     * again before responding (responding itself needs memory). */
    void *head = NULL;
    uint64_t n = 0;
    while (n < 4096) {
        uint8_t *p = malloc(block);
        if (!p) {
            break;
        }
        for (size_t off = 0; off < block; off += 4096) {
            ((volatile uint8_t *)p)[off] = (uint8_t)n;
        }
        *(void **)p = head;
        head = p;
        n++;
    }
    while (head) {
        void *next = *(void **)head;
        free(head);
        head = next;
    }
    buf_t body = {0};
    bool built = buf_append_u64(&body, n) && buf_append_str(&body, "\n");
    respond_built(t, &body, built);
}

static void env(task_t *t, const field_list_t *entries) {
    const wasi_http_types_field_value_t *name = find_header(entries, "x-env");
    if (!name) {
        respond_text(t, 404, "unset\n");
        return;
    }
    service_list_tuple2_string_string_t vars = {NULL, 0};
    wasi_cli_environment_get_environment(&vars);
    const service_string_t *value = NULL;
    for (size_t i = 0; i < vars.len; i++) {
        if (vars.ptr[i].f0.len == name->len &&
            (name->len == 0 || memcmp(vars.ptr[i].f0.ptr, name->ptr, name->len) == 0)) {
            value = &vars.ptr[i].f1;
            break;
        }
    }
    if (!value) {
        service_list_tuple2_string_string_free(&vars);
        respond_text(t, 404, "unset\n");
        return;
    }
    buf_t body = {0};
    bool built = buf_append(&body, value->ptr, value->len) && buf_append_str(&body, "\n");
    service_list_tuple2_string_string_free(&vars);
    respond_built(t, &body, built);
}

static void denied(task_t *t) {
    error_code_t code;
    memset(&code, 0, sizeof(code));
    code.tag = WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_DENIED;
    task_return_error(t, &code);
}

/* A millisecond/count header with a default; false (after a 400) when it is
 * not a number. */
static bool number_header(task_t *t, const field_list_t *entries, const char *name,
                          uint64_t dflt, bool *present, uint64_t *out) {
    *out = dflt;
    if (header_u64(entries, name, present, out)) {
        return true;
    }
    buf_t text = {0};
    if (buf_append_str(&text, "bad ") && buf_append_str(&text, name) &&
        buf_append(&text, "\n", 2)) {
        respond_text(t, 400, (const char *)text.ptr);
    } else {
        task_return_internal(t, "guest: out of memory");
    }
    buf_free(&text);
    return false;
}

void guest_handle(task_t *t, own_request_t request) {
    borrow_request_t req = wasi_http_types_borrow_request(request);
    char *path = request_path(req);
    field_list_t entries;
    request_header_entries(req, &entries);
    bool present = false;
    uint64_t n = 0;

    if (strcmp(path, "/drop-streams") == 0) {
        drop_streams(t, request);
    } else {
        wasi_http_types_request_drop_own(request);
    }

    if (strcmp(path, "/trap-before") == 0) {
        __builtin_trap();
    } else if (strcmp(path, "/trap-mid-body") == 0) {
        trap_mid_body(t);
    } else if (strcmp(path, "/trap-after") == 0) {
        trap_after(t);
    } else if (strcmp(path, "/busy-loop") == 0) {
        busy_loop();
    } else if (strcmp(path, "/alloc") == 0) {
        alloc(t);
    } else if (strcmp(path, "/slow-body") == 0) {
        if (number_header(t, &entries, "x-chunks", 50, &present, &n)) {
            slow_body(t, n);
        }
    } else if (strcmp(path, "/hold") == 0) {
        if (number_header(t, &entries, "x-hold-ms", 0, &present, &n)) {
            if (present) {
                task_sleep_ms(t, n, hold_done, NULL);
            } else {
                hold_forever(t, NULL, 0);
            }
        }
    } else if (strcmp(path, "/drop-streams") == 0) {
        /* handled above */
    } else if (strcmp(path, "/overflow") == 0) {
        length_mismatch(t, 5, "0123456789");
    } else if (strcmp(path, "/underflow") == 0) {
        length_mismatch(t, 10, "01234");
    } else if (strcmp(path, "/after-response") == 0) {
        if (number_header(t, &entries, "x-after-ms", 200, &present, &n)) {
            respond_text(t, 200, "done\n");
            task_sleep_ms(t, n, after_wait, NULL);
        }
    } else if (strcmp(path, "/trap-later") == 0) {
        if (number_header(t, &entries, "x-after-ms", 300, &present, &n)) {
            respond_text(t, 200, "ok\n");
            task_sleep_ms(t, n, trap_later, NULL);
        }
    } else if (strcmp(path, "/print") == 0) {
        print_stdout(t, "guest says hello\n", printed, NULL);
    } else if (strcmp(path, "/huge-headers") == 0) {
        huge_headers(t);
    } else if (strcmp(path, "/status-1xx") == 0) {
        hdrs_t h = {0};
        respond(t, 103, &h, "", 0);
    } else if (strcmp(path, "/env") == 0) {
        env(t, &entries);
    } else if (strcmp(path, "/error-code") == 0) {
        denied(t);
    } else {
        respond_text(t, 404, "unknown fault\n");
    }

    wasi_http_types_list_tuple2_field_name_field_value_free(&entries);
    free(path);
}
