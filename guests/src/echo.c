/*
 * echo: reflects the request back.
 *
 * Response 200 with headers
 *   x-echo-method      GET/HEAD/... or the `other` method string as is
 *   x-echo-path        path-with-query (or `x-echo-path-none: 1` when none)
 *   x-echo-scheme      http / https / the `other` string (omitted when none)
 *   x-echo-authority   (omitted when none)
 *   x-echo-h-<name>    one per request header entry, in order, repeats kept
 *   content-length     only when the request has `x-echo-content-length: N`
 *   trailer            copies of the request's `trailer` header values (if
 *                      any; dropped again if the host refuses them)
 * and the request body streamed back as it arrives; request trailers become
 * response trailers.
 *
 * `x-echo-generate: N` ignores the request body and sends N bytes of the
 * repeating pattern "abcdefghijklmnopqrstuvwxyz" instead (no trailers).
 *
 * `x-echo-read-first: 1` reads the whole request body before answering:
 * 200 with body "<bytes read>\n", or 400 "body error\n" if reading failed.
 *
 * A request-body read error (or a trailers error) aborts the response body:
 * the outgoing-body is dropped without finish.
 */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char PATTERN[] = "abcdefghijklmnopqrstuvwxyz";
#define PATTERN_LEN (sizeof(PATTERN) - 1)

/* Appends the x-echo-* description of the request to `h`. */
static bool describe_request(wasi_http_types_borrow_incoming_request_t req,
                             const field_list_t *entries, hdrs_t *h) {
    bool ok = true;

    wasi_http_types_method_t m;
    wasi_http_types_method_incoming_request_method(req, &m);
    const char *mname = method_name(&m);
    if (mname) {
        ok = ok && hdrs_add_str(h, "x-echo-method", mname);
    } else {
        ok = ok && hdrs_add(h, NULL, (const uint8_t *)"x-echo-method", 13, m.val.other.ptr,
                            m.val.other.len);
    }
    wasi_http_types_method_free(&m);

    proxy_string_t path;
    if (wasi_http_types_method_incoming_request_path_with_query(req, &path)) {
        ok = ok && hdrs_add(h, NULL, (const uint8_t *)"x-echo-path", 11, path.ptr, path.len);
        proxy_string_free(&path);
    } else {
        ok = ok && hdrs_add_str(h, "x-echo-path-none", "1");
    }

    wasi_http_types_scheme_t scheme;
    if (wasi_http_types_method_incoming_request_scheme(req, &scheme)) {
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

    proxy_string_t authority;
    if (wasi_http_types_method_incoming_request_authority(req, &authority)) {
        ok = ok && hdrs_add(h, NULL, (const uint8_t *)"x-echo-authority", 16, authority.ptr,
                            authority.len);
        proxy_string_free(&authority);
    }

    for (size_t i = 0; ok && i < entries->len; i++) {
        const field_entry_t *e = &entries->ptr[i];
        ok = hdrs_add(h, "x-echo-h-", e->f0.ptr, e->f0.len, e->f1.ptr, e->f1.len);
    }
    return ok;
}

/* Sends `total` bytes of the pattern, in writes of at most CHUNK_SIZE. */
static bool generate(borrow_output_stream_t s, uint64_t total) {
    /* CHUNK_SIZE bytes starting at any pattern offset fit in this buffer. */
    static uint8_t buf[CHUNK_SIZE + PATTERN_LEN];
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = (uint8_t)PATTERN[i % PATTERN_LEN];
    }
    uint64_t sent = 0;
    while (sent < total) {
        uint64_t left = total - sent;
        size_t n = left < CHUNK_SIZE ? (size_t)left : CHUNK_SIZE;
        if (!write_all(s, buf + (size_t)(sent % PATTERN_LEN), n, NULL)) {
            return false;
        }
        sent += n;
    }
    return true;
}

/* Copies the request body to the response body, then finishes the response
 * body with the request trailers. Consumes `body` and `ob`. */
static void echo_body(own_incoming_body_t body, out_body_t *ob) {
    wasi_http_types_borrow_incoming_body_t bb = wasi_http_types_borrow_incoming_body(body);
    own_input_stream_t in;
    if (!wasi_http_types_method_incoming_body_stream(bb, &in)) {
        wasi_http_types_incoming_body_drop_own(body);
        abort_body(ob);
        return;
    }
    borrow_input_stream_t inb = wasi_io_streams_borrow_input_stream(in);
    borrow_output_stream_t outb = wasi_io_streams_borrow_output_stream(ob->stream);
    for (;;) {
        proxy_list_u8_t chunk;
        const char *err = NULL;
        read_status_t st = read_chunk(inb, &chunk, &err);
        if (st == READ_CLOSED) {
            break;
        }
        if (st == READ_FAILED) {
            wasi_io_streams_input_stream_drop_own(in);
            wasi_http_types_incoming_body_drop_own(body);
            abort_body(ob);
            return;
        }
        bool ok = write_all(outb, chunk.ptr, chunk.len, NULL);
        proxy_list_u8_free(&chunk);
        if (!ok) {
            wasi_io_streams_input_stream_drop_own(in);
            wasi_http_types_incoming_body_drop_own(body);
            abort_body(ob);
            return;
        }
    }
    wasi_io_streams_input_stream_drop_own(in);

    own_future_trailers_t ft = wasi_http_types_static_incoming_body_finish(body);
    bool has = false;
    own_fields_t trailers;
    const char *err = NULL;
    if (!wait_trailers(wasi_http_types_borrow_future_trailers(ft), &has, &trailers, &err)) {
        wasi_http_types_future_trailers_drop_own(ft);
        abort_body(ob);
        return;
    }
    /* The trailers are a child of `ft`: hand them over before dropping it. */
    (void)finish_body(ob, has ? &trailers : NULL, NULL);
    wasi_http_types_future_trailers_drop_own(ft);
}

/* Reads the whole body, then answers with its size (or 400 on a read error).
 * Consumes `request`. */
static void read_first(own_incoming_request_t request, own_response_outparam_t response_out) {
    wasi_http_types_borrow_incoming_request_t req = wasi_http_types_borrow_incoming_request(request);
    own_incoming_body_t body;
    if (!wasi_http_types_method_incoming_request_consume(req, &body)) {
        wasi_http_types_incoming_request_drop_own(request);
        respond_error(response_out, "guest: incoming-request.consume failed");
        return;
    }
    own_input_stream_t in;
    if (!wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(body), &in)) {
        wasi_http_types_incoming_body_drop_own(body);
        wasi_http_types_incoming_request_drop_own(request);
        respond_error(response_out, "guest: incoming-body.stream failed");
        return;
    }
    borrow_input_stream_t inb = wasi_io_streams_borrow_input_stream(in);
    uint64_t total = 0;
    bool failed = false;
    for (;;) {
        proxy_list_u8_t chunk;
        const char *err = NULL;
        read_status_t st = read_chunk(inb, &chunk, &err);
        if (st == READ_CLOSED) {
            break;
        }
        if (st == READ_FAILED) {
            failed = true;
            break;
        }
        total += chunk.len;
        proxy_list_u8_free(&chunk);
    }
    wasi_io_streams_input_stream_drop_own(in);
    wasi_http_types_incoming_body_drop_own(body);
    wasi_http_types_incoming_request_drop_own(request);
    if (failed) {
        respond_text(response_out, 400, "body error\n");
        return;
    }
    char text[32];
    snprintf(text, sizeof(text), "%llu\n", (unsigned long long)total);
    respond_text(response_out, 200, text);
}

void exports_wasi_http_incoming_handler_handle(own_incoming_request_t request,
                                               own_response_outparam_t response_out) {
    wasi_http_types_borrow_incoming_request_t req = wasi_http_types_borrow_incoming_request(request);

    wasi_http_types_own_headers_t req_headers = wasi_http_types_method_incoming_request_headers(req);
    field_list_t entries = {NULL, 0};
    wasi_http_types_method_fields_entries(wasi_http_types_borrow_fields(req_headers), &entries);
    wasi_http_types_fields_drop_own(req_headers);

    if (find_header(&entries, "x-echo-read-first")) {
        wasi_http_types_list_tuple2_field_name_field_value_free(&entries);
        read_first(request, response_out);
        return;
    }

    bool generate_mode = false;
    uint64_t generate_len = 0;
    const wasi_http_types_field_value_t *v = find_header(&entries, "x-echo-generate");
    if (v) {
        if (!parse_u64(v->ptr, v->len, &generate_len)) {
            wasi_http_types_list_tuple2_field_name_field_value_free(&entries);
            wasi_http_types_incoming_request_drop_own(request);
            respond_text(response_out, 400, "bad x-echo-generate\n");
            return;
        }
        generate_mode = true;
    }

    hdrs_t h = {0};
    bool ok = describe_request(req, &entries, &h);
    v = find_header(&entries, "x-echo-content-length");
    if (ok && v) {
        ok = hdrs_add(&h, NULL, (const uint8_t *)"content-length", 14, v->ptr, v->len);
    }
    /* Re-declare the request's announced trailers on the response (last, and
     * optional): HTTP/1.1 servers such as hyper only send declared trailers. */
    size_t trailer_decls = 0;
    for (size_t i = 0; ok && !generate_mode && i < entries.len; i++) {
        const field_entry_t *e = &entries.ptr[i];
        if (str_ieq(e->f0.ptr, e->f0.len, "trailer")) {
            ok = hdrs_add(&h, NULL, (const uint8_t *)"trailer", 7, e->f1.ptr, e->f1.len);
            trailer_decls++;
        }
    }
    wasi_http_types_list_tuple2_field_name_field_value_free(&entries);
    if (!ok) {
        hdrs_free(&h);
        wasi_http_types_incoming_request_drop_own(request);
        respond_error(response_out, "guest: out of memory");
        return;
    }

    own_incoming_body_t body;
    bool have_body = false;
    if (!generate_mode) {
        if (!wasi_http_types_method_incoming_request_consume(req, &body)) {
            hdrs_free(&h);
            wasi_http_types_incoming_request_drop_own(request);
            respond_error(response_out, "guest: incoming-request.consume failed");
            return;
        }
        have_body = true;
    }

    out_body_t ob;
    if (!start_response_opt(response_out, 200, &h, trailer_decls, &ob)) {
        if (have_body) {
            wasi_http_types_incoming_body_drop_own(body);
        }
        wasi_http_types_incoming_request_drop_own(request);
        return;
    }

    if (generate_mode) {
        wasi_http_types_incoming_request_drop_own(request);
        if (generate(wasi_io_streams_borrow_output_stream(ob.stream), generate_len)) {
            (void)finish_body(&ob, NULL, NULL);
        } else {
            abort_body(&ob);
        }
        return;
    }

    echo_body(body, &ob);
    wasi_http_types_incoming_request_drop_own(request);
}
