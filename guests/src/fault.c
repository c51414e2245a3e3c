/*
 * fault: misbehaves on purpose, selected by the request path (query ignored).
 *
 *   /trap-before     trap before setting the response
 *   /trap-after      200, write "partial", flush, then trap
 *   /never-set       return without setting the response-outparam
 *   /keep-outparam   return without setting or dropping the response-outparam
 *                    (the handle stays in the instance)
 *   /set-twice       set a 200 response, then response-outparam.set again
 *                    with the already-consumed handle (host should trap)
 *   /overflow        content-length: 5, writes 10 bytes, finish
 *   /underflow       content-length: 10, writes 5 bytes, finish
 *   /huge-headers    appends 1 KiB headers until refused (or 100000)
 *   /invalid-header  reports fields.append results for bad input
 *   /immutable       tries to set on the incoming request's headers
 *   /busy-loop       never returns
 *   /alloc           mallocs 1 MiB blocks until malloc fails (or 4096 MiB)
 *   /alloc-abort     the same, but aborts (traps) when malloc fails, as most
 *                    languages' runtimes do on out-of-memory
 *   /double-consume  consumes the request (and takes the body stream) twice;
 *                    reports the results (the WIT says: err the second time)
 *   /finish-live-stream  finishes the response body while its stream is
 *                    still alive (host should trap; the body is aborted)
 *   /denied          sets the response-outparam to err(HTTP-request-denied)
 *   /leak-fields     creates fields resources forever without dropping them
 *   /informational   response-outparam.send-informational(103), then 200 with
 *                    body "informational: <ok|error-code name>\n"
 *   /fresh-only      200 "fresh\n" on an instance's first request, 500 on any
 *                    later one (a guest that breaks under instance reuse)
 *   /fresh-only-silent  on an instance's first request: reads the request
 *                    body and answers 200 "fresh: <body>"; on any later one
 *                    returns without setting the response-outparam, having
 *                    read nothing (as a ComponentizeJS guest does when reused)
 *   /fresh-only-silent-read  the same, but a reused instance reads the whole
 *                    request body before it returns without a response
 *   /fresh-only-silent-send  the same, but a reused instance first starts an
 *                    outgoing request (to 127.0.0.1:9) and drops its future
 *   /print           prints "guest says hello" on stdout, then 1 MiB of 'x'
 *                    lines on stderr, then 200 "printed\n"
 *   anything else    404 "unknown fault\n"
 */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Responds 200 with `text` if it was built completely, else internal-error;
 * frees `text` either way. */
static void respond_built(own_response_outparam_t out, buf_t *text, bool built) {
    if (!built) {
        buf_free(text);
        respond_error(out, "guest: out of memory");
        return;
    }
    hdrs_t h = {0};
    respond(out, 200, &h, text->ptr, text->len);
    buf_free(text);
}

static void trap_after(own_response_outparam_t out) {
    hdrs_t h = {0};
    out_body_t ob;
    if (!start_response(out, 200, &h, &ob)) {
        return;
    }
    borrow_output_stream_t s = wasi_io_streams_borrow_output_stream(ob.stream);
    (void)write_all(s, "partial", 7, NULL);
    (void)flush_wait(s, NULL);
    __builtin_trap();
}

static void set_twice(own_response_outparam_t out) {
    hdrs_t h = {0};
    out_body_t ob;
    if (!start_response(out, 200, &h, &ob)) {
        return;
    }
    (void)finish_body(&ob, NULL, NULL);

    /* `out` was consumed by the first set; pass the stale handle again. */
    own_outgoing_response_t second =
        wasi_http_types_constructor_outgoing_response(wasi_http_types_constructor_fields());
    wasi_http_types_result_own_outgoing_response_error_code_t r;
    memset(&r, 0, sizeof(r));
    r.is_err = false;
    r.val.ok = second;
    wasi_http_types_static_response_outparam_set(out, &r);
}

/* A response with `content-length: <declared>` and `body` written to it;
 * every result is ignored. */
static void length_mismatch(own_response_outparam_t out, uint64_t declared, const char *body) {
    hdrs_t h = {0};
    if (!hdrs_add_u64(&h, "content-length", declared)) {
        hdrs_free(&h);
        respond_error(out, "guest: out of memory");
        return;
    }
    out_body_t ob;
    if (!start_response(out, 200, &h, &ob)) {
        return;
    }
    (void)write_all(wasi_io_streams_borrow_output_stream(ob.stream), body, strlen(body), NULL);
    (void)finish_body(&ob, NULL, NULL);
}

static void huge_headers(own_response_outparam_t out) {
    static uint8_t value[1024];
    memset(value, 'v', sizeof(value));
    own_fields_t f = wasi_http_types_constructor_fields();
    wasi_http_types_borrow_fields_t fb = wasi_http_types_borrow_fields(f);
    const char *result = "none";
    uint64_t i = 0;
    for (; i < 100000; i++) {
        buf_t name = {0};
        if (!buf_append_str(&name, "x-h-") || !buf_append_u64(&name, i)) {
            buf_free(&name);
            result = "guest-out-of-memory";
            break;
        }
        proxy_string_t n = {name.ptr, name.len};
        wasi_http_types_field_value_t v = {value, sizeof(value)};
        header_error_t err;
        bool ok = wasi_http_types_method_fields_append(fb, &n, &v, &err);
        buf_free(&name);
        if (!ok) {
            result = header_error_name(err);
            break;
        }
    }
    wasi_http_types_fields_drop_own(f);

    buf_t body = {0};
    bool built = buf_append_str(&body, "stopped after ") && buf_append_u64(&body, i) &&
                 buf_append_str(&body, ": ") && buf_append_str(&body, result) &&
                 buf_append_str(&body, "\n");
    respond_built(out, &body, built);
}

static bool try_append(buf_t *body, wasi_http_types_borrow_fields_t f, const char *label,
                       const char *name, const char *value) {
    proxy_string_t n = str_view(name);
    wasi_http_types_field_value_t v = {(uint8_t *)value, strlen(value)};
    header_error_t err;
    const char *result = "ok";
    if (!wasi_http_types_method_fields_append(f, &n, &v, &err)) {
        result = header_error_name(err);
    }
    return buf_append_str(body, label) && buf_append_str(body, ": ") &&
           buf_append_str(body, result) && buf_append_str(body, "\n");
}

static void invalid_header(own_response_outparam_t out) {
    own_fields_t f = wasi_http_types_constructor_fields();
    wasi_http_types_borrow_fields_t fb = wasi_http_types_borrow_fields(f);
    buf_t body = {0};
    bool ok = try_append(&body, fb, "bad-name", "bad name", "x") &&
              try_append(&body, fb, "bad-value", "x-ok", "bad\nvalue") &&
              try_append(&body, fb, "forbidden", "connection", "close") &&
              try_append(&body, fb, "good", "x-good", "fine");
    wasi_http_types_fields_drop_own(f);
    respond_built(out, &body, ok);
}

static void immutable(wasi_http_types_borrow_incoming_request_t req,
                      own_response_outparam_t out) {
    wasi_http_types_own_headers_t headers = wasi_http_types_method_incoming_request_headers(req);
    proxy_string_t name = str_view("x-new");
    wasi_http_types_field_value_t one = {(uint8_t *)"1", 1};
    wasi_http_types_list_field_value_t values = {&one, 1};
    header_error_t err;
    const char *result = "ok";
    if (!wasi_http_types_method_fields_set(wasi_http_types_borrow_fields(headers), &name, &values,
                                           &err)) {
        result = header_error_name(err);
    }
    wasi_http_types_fields_drop_own(headers);
    buf_t body = {0};
    bool built = buf_append_str(&body, "immutable-set: ") && buf_append_str(&body, result) &&
                 buf_append_str(&body, "\n");
    respond_built(out, &body, built);
}

static const char *ok_err(bool ok) { return ok ? "ok" : "err"; }

static void double_consume(wasi_http_types_borrow_incoming_request_t req,
                           own_response_outparam_t out) {
    wasi_http_types_own_incoming_body_t body, again;
    bool first = wasi_http_types_method_incoming_request_consume(req, &body);
    bool second = wasi_http_types_method_incoming_request_consume(req, &again);
    const char *second_stream = "n/a";
    if (first) {
        wasi_http_types_borrow_incoming_body_t bb = wasi_http_types_borrow_incoming_body(body);
        wasi_http_types_own_input_stream_t s1, s2;
        if (wasi_http_types_method_incoming_body_stream(bb, &s1)) {
            bool ok = wasi_http_types_method_incoming_body_stream(bb, &s2);
            second_stream = ok_err(ok);
            if (ok) {
                wasi_io_streams_input_stream_drop_own(s2);
            }
            wasi_io_streams_input_stream_drop_own(s1);
        }
        wasi_http_types_incoming_body_drop_own(body);
    }
    if (second) {
        wasi_http_types_incoming_body_drop_own(again);
    }
    buf_t text = {0};
    bool built = buf_append_str(&text, "first-consume: ") && buf_append_str(&text, ok_err(first)) &&
                 buf_append_str(&text, "\nsecond-consume: ") &&
                 buf_append_str(&text, ok_err(second)) &&
                 buf_append_str(&text, "\nsecond-stream: ") &&
                 buf_append_str(&text, second_stream) && buf_append_str(&text, "\n");
    respond_built(out, &text, built);
}

/* Reads the whole request body into `text` (appended). False on any error. */
static bool read_body(wasi_http_types_borrow_incoming_request_t req, buf_t *text) {
    own_incoming_body_t body;
    if (!wasi_http_types_method_incoming_request_consume(req, &body)) {
        return false;
    }
    own_input_stream_t in;
    bool ok = wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(body), &in);
    if (ok) {
        borrow_input_stream_t s = wasi_io_streams_borrow_input_stream(in);
        for (;;) {
            proxy_list_u8_t chunk;
            const char *err = NULL;
            read_status_t st = read_chunk(s, &chunk, &err);
            if (st == READ_CLOSED) {
                break;
            }
            if (st == READ_FAILED) {
                ok = false;
                break;
            }
            ok = buf_append(text, chunk.ptr, chunk.len);
            proxy_list_u8_free(&chunk);
            if (!ok) {
                break;
            }
        }
        wasi_io_streams_input_stream_drop_own(in);
    }
    wasi_http_types_incoming_body_drop_own(body);
    return ok;
}

/* Starts a GET to 127.0.0.1:9 and drops it: an effect outside the instance. */
static void send_and_forget(void) {
    own_fields_t headers = wasi_http_types_constructor_fields();
    wasi_http_types_own_outgoing_request_t r = wasi_http_types_constructor_outgoing_request(headers);
    proxy_string_t authority = str_view("127.0.0.1:9");
    wasi_http_types_scheme_t scheme = {.tag = WASI_HTTP_TYPES_SCHEME_HTTP};
    wasi_http_types_borrow_outgoing_request_t rb = wasi_http_types_borrow_outgoing_request(r);
    (void)wasi_http_types_method_outgoing_request_set_scheme(rb, &scheme);
    (void)wasi_http_types_method_outgoing_request_set_authority(rb, &authority);
    own_future_incoming_response_t fut;
    error_code_t code;
    if (wasi_http_outgoing_handler_handle(r, NULL, &fut, &code)) {
        wasi_http_types_future_incoming_response_drop_own(fut);
    } else {
        wasi_http_types_error_code_free(&code);
    }
}

typedef enum { WHEN_REUSED_NOTHING, WHEN_REUSED_READ, WHEN_REUSED_SEND } when_reused_t;

/* An instance's first request is answered, every later one is not (see the
 * list at the top); `when_reused`: what a reused instance does before giving up. */
static void fresh_only_silent(wasi_http_types_borrow_incoming_request_t req,
                              own_response_outparam_t out, when_reused_t when_reused) {
    static int calls = 0;
    buf_t text = {0};
    if (calls++ == 0) {
        bool built = buf_append_str(&text, "fresh: ") && read_body(req, &text);
        respond_built(out, &text, built);
        return;
    }
    if (when_reused == WHEN_REUSED_READ) {
        (void)read_body(req, &text);
        buf_free(&text);
    } else if (when_reused == WHEN_REUSED_SEND) {
        send_and_forget();
    }
    wasi_http_types_response_outparam_drop_own(out);
}

static void finish_live_stream(own_response_outparam_t out) {
    hdrs_t h = {0};
    out_body_t ob;
    if (!start_response(out, 200, &h, &ob)) {
        return;
    }
    /* ob.stream is deliberately still open. */
    wasi_http_types_error_code_t err;
    (void)wasi_http_types_static_outgoing_body_finish(ob.body, NULL, &err);
}

static void informational(own_response_outparam_t out) {
    wasi_http_types_own_headers_t hints = wasi_http_types_constructor_fields();
    wasi_http_types_error_code_t err;
    const char *result = "ok";
    if (!wasi_http_types_method_response_outparam_send_informational(
            wasi_http_types_borrow_response_outparam(out), 103, hints, &err)) {
        result = error_code_name(&err);
    }
    buf_t text = {0};
    bool built = buf_append_str(&text, "informational: ") && buf_append_str(&text, result) &&
                 buf_append_str(&text, "\n");
    if (result != NULL && strcmp(result, "ok") != 0) {
        wasi_http_types_error_code_free(&err);
    }
    respond_built(out, &text, built);
}

static void denied(own_response_outparam_t out) {
    wasi_http_types_result_own_outgoing_response_error_code_t r;
    memset(&r, 0, sizeof(r));
    r.is_err = true;
    r.val.err.tag = WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_DENIED;
    wasi_http_types_static_response_outparam_set(out, &r);
}

static void leak_fields(void) {
    for (;;) {
        (void)wasi_http_types_constructor_fields();
    }
}

static void busy_loop(void) {
    volatile uint64_t counter = 0;
    for (;;) {
        counter = counter + 1;
    }
}

static void print(own_response_outparam_t out) {
    printf("guest says hello\n");
    fflush(stdout);
    static char line[1025];
    memset(line, 'x', 1024);
    line[1024] = '\n';
    for (int i = 0; i < 1024; i++) {
        fwrite(line, 1, sizeof(line), stderr);
    }
    fflush(stderr);
    respond_text(out, 200, "printed\n");
}

static void alloc(own_response_outparam_t out, bool abort_on_failure) {
    const size_t block = (size_t)1 << 20;
    /* Blocks are chained through their first word so they can all be freed
     * again before responding (responding itself needs memory). */
    void *head = NULL;
    uint64_t n = 0;
    while (n < 4096) {
        uint8_t *p = malloc(block);
        if (!p) {
            if (abort_on_failure) {
                abort();
            }
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
    bool built = buf_append_str(&body, "allocated ") && buf_append_u64(&body, n) &&
                 buf_append_str(&body, " MiB\n");
    respond_built(out, &body, built);
}

void exports_wasi_http_incoming_handler_handle(own_incoming_request_t request,
                                               own_response_outparam_t response_out) {
    wasi_http_types_borrow_incoming_request_t req = wasi_http_types_borrow_incoming_request(request);
    proxy_string_t pq = {NULL, 0};
    bool has_path = wasi_http_types_method_incoming_request_path_with_query(req, &pq);
    size_t len = 0;
    if (has_path) {
        while (len < pq.len && pq.ptr[len] != '?') {
            len++;
        }
    }
    const uint8_t *path = pq.ptr;

    if (str_eq(path, len, "/trap-before")) {
        __builtin_trap();
    } else if (str_eq(path, len, "/trap-after")) {
        trap_after(response_out);
    } else if (str_eq(path, len, "/never-set")) {
        wasi_http_types_response_outparam_drop_own(response_out);
    } else if (str_eq(path, len, "/keep-outparam")) {
        /* Deliberately leaked: the handle stays in the instance's table. */
        (void)response_out;
    } else if (str_eq(path, len, "/set-twice")) {
        set_twice(response_out);
    } else if (str_eq(path, len, "/overflow")) {
        length_mismatch(response_out, 5, "0123456789");
    } else if (str_eq(path, len, "/underflow")) {
        length_mismatch(response_out, 10, "01234");
    } else if (str_eq(path, len, "/huge-headers")) {
        huge_headers(response_out);
    } else if (str_eq(path, len, "/invalid-header")) {
        invalid_header(response_out);
    } else if (str_eq(path, len, "/immutable")) {
        immutable(req, response_out);
    } else if (str_eq(path, len, "/busy-loop")) {
        busy_loop();
    } else if (str_eq(path, len, "/alloc")) {
        alloc(response_out, false);
    } else if (str_eq(path, len, "/fresh-only")) {
        static int calls = 0;
        if (calls++ == 0) {
            respond_text(response_out, 200, "fresh\n");
        } else {
            respond_text(response_out, 500, "reused\n");
        }
    } else if (str_eq(path, len, "/fresh-only-silent")) {
        fresh_only_silent(req, response_out, WHEN_REUSED_NOTHING);
    } else if (str_eq(path, len, "/fresh-only-silent-read")) {
        fresh_only_silent(req, response_out, WHEN_REUSED_READ);
    } else if (str_eq(path, len, "/fresh-only-silent-send")) {
        fresh_only_silent(req, response_out, WHEN_REUSED_SEND);
    } else if (str_eq(path, len, "/print")) {
        print(response_out);
    } else if (str_eq(path, len, "/alloc-abort")) {
        alloc(response_out, true);
    } else if (str_eq(path, len, "/leak-fields")) {
        leak_fields();
    } else if (str_eq(path, len, "/denied")) {
        denied(response_out);
    } else if (str_eq(path, len, "/informational")) {
        informational(response_out);
    } else if (str_eq(path, len, "/double-consume")) {
        double_consume(req, response_out);
    } else if (str_eq(path, len, "/finish-live-stream")) {
        finish_live_stream(response_out);
    } else {
        respond_text(response_out, 404, "unknown fault\n");
    }

    if (has_path) {
        proxy_string_free(&pq);
    }
    wasi_http_types_incoming_request_drop_own(request);
}
