/*
 * p3-echo (WASI 0.3): reflects the request back.
 *
 * Response 200 with headers
 *   x-echo-method      GET/HEAD/... or the `other` method string as is
 *   x-echo-path        path-with-query (or `x-echo-path-none: 1` when none)
 *   x-echo-scheme      HTTP -> http, HTTPS -> https, the `other` string
 *                      (omitted when none)
 *   x-echo-authority   (omitted when none)
 *   x-echo-h-<name>    one per request header entry, in order, repeats kept
 *   content-length     only when the request has `x-echo-content-length: N`
 *   x-echo-instance    a number unique to this instance (random, lower-case
 *                      hex, fixed at the instance's first request)
 *   x-echo-in-flight   how many handle calls this instance is running when
 *                      the response is created (this one included)
 *   trailer            copies of the request's `trailer` header values (if
 *                      any; last, and dropped again if the host refuses them)
 * and the request body streamed back as it arrives: the guest reads a chunk
 * from the request's body stream, writes it to the response's body stream,
 * waits for that write to complete, and so on. Once the request body has
 * ended, the request's trailers (the consume-body trailers future) are
 * written to the response's trailers future; a request-body or trailers
 * error is written there instead (err(<that error-code>)).
 *
 * x-echo-instance and x-echo-in-flight are on every response of this guest
 * (also the read-first and 400 ones below).
 *
 * `x-echo-generate: N` ignores the request body and sends N bytes of the
 * repeating pattern "abcdefghijklmnopqrstuvwxyz" instead (trailers ok(none)).
 *
 * `x-echo-read-first: 1` reads the whole request body before answering:
 * 200 with body "<bytes read>\n", or 400 "body error\n" if reading failed
 * (the trailers future resolved to an error).
 *
 * `x-echo-forward: 1` passes the request's body stream and trailers future
 * straight into response.new as the response's contents and trailers (the
 * bytes never pass through the guest).
 *
 * `x-echo-delay-ms: N` first waits N ms (monotonic-clock.wait-for, as a
 * subtask: the instance takes other requests meanwhile), then goes on as
 * above; the response is created after the wait.
 *
 * Modes, first match wins: x-echo-read-first, x-echo-generate,
 * x-echo-forward, else the streamed echo. An unparsable x-echo-generate /
 * x-echo-delay-ms: 400 "bad <header>\n".
 */
#include "common.h"

#include <stdlib.h>
#include <string.h>

static const char PATTERN[] = "abcdefghijklmnopqrstuvwxyz";
#define PATTERN_LEN (sizeof(PATTERN) - 1)

typedef struct {
    own_request_t request;
    field_list_t entries;
    bool read_first;
    bool forward;
    bool generate;
    uint64_t generate_len;
    /* generate */
    body_out_t out;
    write_op_t wr;
    uint64_t sent;
    size_t chunk;
    /* read-first */
    body_in_t in;
    read_op_t rd;
    uint64_t total;
    trailers_result_t trailers;
    uint8_t *buf;
} echo_t;

/* Appends the x-echo-* description of the request to `h`. */
static bool describe_request(borrow_request_t req, const field_list_t *entries, hdrs_t *h) {
    bool ok = true;

    wasi_http_types_method_t m;
    wasi_http_types_method_request_get_method(req, &m);
    const char *mname = method_name(&m);
    if (mname) {
        ok = ok && hdrs_add_str(h, "x-echo-method", mname);
    } else {
        ok = ok && hdrs_add(h, NULL, (const uint8_t *)"x-echo-method", 13, m.val.other.ptr,
                            m.val.other.len);
    }
    wasi_http_types_method_free(&m);

    service_string_t path;
    if (wasi_http_types_method_request_get_path_with_query(req, &path)) {
        ok = ok && hdrs_add(h, NULL, (const uint8_t *)"x-echo-path", 11, path.ptr, path.len);
        service_string_free(&path);
    } else {
        ok = ok && hdrs_add_str(h, "x-echo-path-none", "1");
    }

    wasi_http_types_scheme_t scheme;
    if (wasi_http_types_method_request_get_scheme(req, &scheme)) {
        switch (scheme.tag) {
        case WASI_HTTP_TYPES_SCHEME_HTTP:
            ok = ok && hdrs_add_str(h, "x-echo-scheme", "http");
            break;
        case WASI_HTTP_TYPES_SCHEME_HTTPS:
            ok = ok && hdrs_add_str(h, "x-echo-scheme", "https");
            break;
        default:
            ok = ok && hdrs_add(h, NULL, (const uint8_t *)"x-echo-scheme", 13,
                                scheme.val.other.ptr, scheme.val.other.len);
            break;
        }
        wasi_http_types_scheme_free(&scheme);
    }

    service_string_t authority;
    if (wasi_http_types_method_request_get_authority(req, &authority)) {
        ok = ok && hdrs_add(h, NULL, (const uint8_t *)"x-echo-authority", 16, authority.ptr,
                            authority.len);
        service_string_free(&authority);
    }

    for (size_t i = 0; ok && i < entries->len; i++) {
        const field_entry_t *e = &entries->ptr[i];
        ok = hdrs_add(h, "x-echo-h-", e->f0.ptr, e->f0.len, e->f1.ptr, e->f1.len);
    }
    return ok;
}

/* x-echo-instance and x-echo-in-flight, as of now. */
static bool add_instance_headers(hdrs_t *h) {
    return hdrs_add_hex(h, "x-echo-instance", instance_id()) &&
           hdrs_add_u64(h, "x-echo-in-flight", tasks_in_flight());
}

static void echo_free(echo_t *e) {
    wasi_http_types_list_tuple2_field_name_field_value_free(&e->entries);
}

/* A text response with the instance headers. */
static void echo_text(task_t *t, uint16_t status, const char *text) {
    hdrs_t h = {0};
    if (!add_instance_headers(&h)) {
        hdrs_free(&h);
        task_return_internal(t, "guest: out of memory");
        return;
    }
    respond(t, status, &h, text, strlen(text));
}

/* ---------------------------------------------------------- generate --- */

static uint8_t pattern_buf[CHUNK_SIZE + PATTERN_LEN];

static void generate_next(task_t *t, echo_t *e);

static void generate_written(task_t *t, void *arg, bool ok) {
    echo_t *e = arg;
    if (!ok) {
        wasi_http_types_stream_u8_drop_writable(e->out.body);
        write_trailers_internal_error(t, e->out.trailers);
        return;
    }
    e->sent += e->chunk;
    generate_next(t, e);
}

static void generate_next(task_t *t, echo_t *e) {
    if (e->sent >= e->generate_len) {
        body_out_end_ok(t, &e->out);
        return;
    }
    uint64_t left = e->generate_len - e->sent;
    e->chunk = left < CHUNK_SIZE ? (size_t)left : CHUNK_SIZE;
    write_all(t, &e->wr, e->out.body, pattern_buf + (size_t)(e->sent % PATTERN_LEN), e->chunk,
              generate_written, e);
}

/* -------------------------------------------------------- read-first --- */

static void read_first_chunk(task_t *t, void *arg, size_t n, bool ended);

static void read_first_trailers(task_t *t, void *arg, bool ok) {
    echo_t *e = arg;
    bool failed = !ok || e->trailers.is_err;
    if (ok) {
        if (e->trailers.is_err) {
            wasi_http_types_error_code_free(&e->trailers.val.err);
        } else if (e->trailers.val.ok.is_some) {
            wasi_http_types_fields_drop_own(e->trailers.val.ok.val);
        }
    }
    if (failed) {
        echo_text(t, 400, "body error\n");
        return;
    }
    buf_t text = {0};
    if (!buf_append_u64(&text, e->total) || !buf_append(&text, "\n", 2)) {
        buf_free(&text);
        task_return_internal(t, "guest: out of memory");
        return;
    }
    echo_text(t, 200, (const char *)text.ptr);
    buf_free(&text);
}

static void read_first_chunk(task_t *t, void *arg, size_t n, bool ended) {
    echo_t *e = arg;
    e->total += n;
    if (ended) {
        wasi_http_types_stream_u8_drop_readable(e->in.body);
        read_trailers(t, e->in.trailers, &e->trailers, read_first_trailers, e);
        return;
    }
    read_some(t, &e->rd, e->in.body, e->buf, CHUNK_SIZE, read_first_chunk, e);
}

/* ------------------------------------------------------------- main ---- */

/* After the optional delay: answers according to the mode. */
static void echo_respond(task_t *t, void *arg, uint32_t code) {
    (void)code;
    echo_t *e = arg;
    borrow_request_t req = wasi_http_types_borrow_request(e->request);

    if (e->read_first) {
        e->buf = task_alloc(t, CHUNK_SIZE);
        consume_request(t, e->request, &e->in);
        echo_free(e);
        read_some(t, &e->rd, e->in.body, e->buf, CHUNK_SIZE, read_first_chunk, e);
        return;
    }

    hdrs_t h = {0};
    bool ok = describe_request(req, &e->entries, &h);
    const wasi_http_types_field_value_t *v = find_header(&e->entries, "x-echo-content-length");
    if (ok && v) {
        ok = hdrs_add(&h, NULL, (const uint8_t *)"content-length", 14, v->ptr, v->len);
    }
    ok = ok && add_instance_headers(&h);
    /* Re-declare the request's announced trailers on the response (last, and
     * optional): HTTP/1.1 servers such as hyper only send declared trailers. */
    size_t trailer_decls = 0;
    for (size_t i = 0; ok && !e->generate && i < e->entries.len; i++) {
        const field_entry_t *f = &e->entries.ptr[i];
        if (str_ieq(f->f0.ptr, f->f0.len, "trailer")) {
            ok = hdrs_add(&h, NULL, (const uint8_t *)"trailer", 7, f->f1.ptr, f->f1.len);
            trailer_decls++;
        }
    }
    echo_free(e);
    if (!ok) {
        hdrs_free(&h);
        wasi_http_types_request_drop_own(e->request);
        task_return_internal(t, "guest: out of memory");
        return;
    }

    if (e->generate) {
        wasi_http_types_request_drop_own(e->request);
        if (respond_stream(t, 200, &h, 0, &e->out)) {
            generate_next(t, e);
        }
        return;
    }

    if (e->forward) {
        own_fields_t fields;
        header_error_t herr;
        bool built = hdrs_to_fields(&h, &fields, &herr);
        if (!built && trailer_decls > 0) {
            wasi_http_types_header_error_free(&herr);
            hdrs_t required = {h.ptr, h.len - trailer_decls, h.cap};
            built = hdrs_to_fields(&required, &fields, &herr);
        }
        hdrs_free(&h);
        if (!built) {
            wasi_http_types_header_error_free(&herr);
            wasi_http_types_request_drop_own(e->request);
            task_return_internal(t, "guest: response headers rejected");
            return;
        }
        body_in_t in;
        consume_request(t, e->request, &in);
        wasi_http_types_tuple2_own_response_future_result_void_error_code_t ret;
        wasi_http_types_static_response_new(fields, &in.body, in.trailers, &ret);
        wasi_http_types_future_result_void_error_code_drop_readable(ret.f1);
        task_return_response(t, ret.f0);
        return;
    }

    body_out_t out;
    if (!respond_stream(t, 200, &h, trailer_decls, &out)) {
        wasi_http_types_request_drop_own(e->request);
        return;
    }
    body_in_t in;
    consume_request(t, e->request, &in);
    pipe_body(t, in, out);
}

void guest_handle(task_t *t, own_request_t request) {
    if (pattern_buf[0] == 0) {
        for (size_t i = 0; i < sizeof(pattern_buf); i++) {
            pattern_buf[i] = (uint8_t)PATTERN[i % PATTERN_LEN];
        }
    }

    echo_t *e = task_alloc(t, sizeof(*e));
    e->request = request;
    request_header_entries(wasi_http_types_borrow_request(request), &e->entries);

    e->read_first = find_header(&e->entries, "x-echo-read-first") != NULL;
    const wasi_http_types_field_value_t *fwd = find_header(&e->entries, "x-echo-forward");
    e->forward = fwd && str_eq(fwd->ptr, fwd->len, "1");
    bool present = false;
    if (!header_u64(&e->entries, "x-echo-generate", &e->generate, &e->generate_len)) {
        echo_free(e);
        wasi_http_types_request_drop_own(request);
        echo_text(t, 400, "bad x-echo-generate\n");
        return;
    }
    uint64_t delay = 0;
    if (!header_u64(&e->entries, "x-echo-delay-ms", &present, &delay)) {
        echo_free(e);
        wasi_http_types_request_drop_own(request);
        echo_text(t, 400, "bad x-echo-delay-ms\n");
        return;
    }
    if (present) {
        task_sleep_ms(t, delay, echo_respond, e);
    } else {
        echo_respond(t, e, 0);
    }
}
