/*
 * client: makes outbound requests with wasi:http/outgoing-handler, driven by
 * the incoming request's headers.
 *
 *   x-url: scheme://authority[/path?query]   (required; 400 "missing x-url")
 *   x-no-path: 1                 set-path-with-query(none)
 *   x-method: NAME               default GET; GET..PATCH exact (case-sensitive)
 *                                map to the enum cases, anything else other(NAME)
 *   x-fwd-<name>: <value>        outgoing header <name>: <value> (repeats kept)
 *   x-connect-timeout-ms / x-first-byte-timeout-ms / x-between-bytes-timeout-ms
 *   x-forward-body: 1            stream the incoming body (and trailers) out
 *   x-mode: buffer               read everything before responding
 *   x-drop-body-early: 1         read one chunk, drop body, respond "dropped\n"
 *   x-concurrent: N (1..=64)     N bodiless requests polled together
 *
 * Build errors: 400, `x-error: <label>`, body <label> (no newline), labels
 * header-<invalid-syntax|forbidden|immutable>, set-method-failed,
 * set-scheme-failed, set-authority-failed, set-path-failed,
 * set-connect-timeout-failed, set-first-byte-timeout-failed,
 * set-between-bytes-timeout-failed, bad-x-url, bad-<header name> (unparsable
 * number / x-concurrent out of range). Request errors: 502,
 * `x-error: <error-code>`, body "<error-code>\n".
 *
 * Success (default streaming mode): 200, `x-status`, `x-resp-<name>` per
 * origin header entry, then (last, dropped again if the host refuses them)
 * `trailer: x-body-error` and a copy of each origin `trailer` header, so that
 * HTTP/1.1 servers that only send declared trailers (hyper) pass them on.
 * The origin trailers become the response trailers; an origin body read
 * error becomes the trailer `x-body-error: <name>`.
 *
 * With x-forward-body, a failure sending the body is reported on the final
 * response (200 or 502) as `x-body-send-error: <name>`, a failure reading the
 * incoming request body as `x-body-recv-error: <name>`.
 */
#include "common.h"

#include <stdlib.h>
#include <string.h>

#define MAX_CONCURRENT 64

typedef struct {
    proxy_string_t scheme_str;
    proxy_string_t authority;
    proxy_string_t path;
    wasi_http_types_scheme_t scheme;
    wasi_http_types_method_t method;
    bool no_path;
    hdrs_t fwd;
    wasi_http_types_option_duration_t connect_timeout;
    wasi_http_types_option_duration_t first_byte_timeout;
    wasi_http_types_option_duration_t between_bytes_timeout;
    bool forward_body;
    bool buffer_mode;
    bool drop_early;
    uint64_t concurrent; /* 0: not concurrent */
} config_t;

static bool is_one(const wasi_http_types_field_value_t *v) {
    return v && str_eq(v->ptr, v->len, "1");
}

static const struct {
    const char *name;
    uint8_t tag;
} METHODS[] = {
    {"GET", WASI_HTTP_TYPES_METHOD_GET},         {"HEAD", WASI_HTTP_TYPES_METHOD_HEAD},
    {"POST", WASI_HTTP_TYPES_METHOD_POST},       {"PUT", WASI_HTTP_TYPES_METHOD_PUT},
    {"DELETE", WASI_HTTP_TYPES_METHOD_DELETE},   {"CONNECT", WASI_HTTP_TYPES_METHOD_CONNECT},
    {"OPTIONS", WASI_HTTP_TYPES_METHOD_OPTIONS}, {"TRACE", WASI_HTTP_TYPES_METHOD_TRACE},
    {"PATCH", WASI_HTTP_TYPES_METHOD_PATCH},
};

static wasi_http_types_method_t parse_method(const wasi_http_types_field_value_t *v) {
    wasi_http_types_method_t m;
    memset(&m, 0, sizeof(m));
    m.tag = WASI_HTTP_TYPES_METHOD_GET;
    if (!v) {
        return m;
    }
    for (size_t i = 0; i < sizeof(METHODS) / sizeof(METHODS[0]); i++) {
        if (str_eq(v->ptr, v->len, METHODS[i].name)) {
            m.tag = METHODS[i].tag;
            return m;
        }
    }
    m.tag = WASI_HTTP_TYPES_METHOD_OTHER;
    m.val.other.ptr = v->ptr; /* borrowed from the request header entries */
    m.val.other.len = v->len;
    return m;
}

/* `scheme://authority[/path?query]`; all parts borrow from `v`. */
static bool parse_url(const wasi_http_types_field_value_t *v, config_t *c) {
    const uint8_t *p = v->ptr;
    size_t n = v->len;
    size_t i = 0;
    while (i + 2 < n && !(p[i] == ':' && p[i + 1] == '/' && p[i + 2] == '/')) {
        i++;
    }
    if (i == 0 || i + 2 >= n) {
        return false;
    }
    c->scheme_str.ptr = (uint8_t *)p;
    c->scheme_str.len = i;
    memset(&c->scheme, 0, sizeof(c->scheme));
    if (str_eq(p, i, "http")) {
        c->scheme.tag = WASI_HTTP_TYPES_SCHEME_HTTP;
    } else if (str_eq(p, i, "https")) {
        c->scheme.tag = WASI_HTTP_TYPES_SCHEME_HTTPS;
    } else {
        c->scheme.tag = WASI_HTTP_TYPES_SCHEME_OTHER;
        c->scheme.val.other = c->scheme_str;
    }
    size_t a = i + 3;
    size_t e = a;
    while (e < n && p[e] != '/' && p[e] != '?') {
        e++;
    }
    c->authority.ptr = (uint8_t *)p + a;
    c->authority.len = e - a;
    if (e < n) {
        c->path.ptr = (uint8_t *)p + e;
        c->path.len = n - e;
    } else {
        c->path = str_view("/");
    }
    return true;
}

/* Parses a millisecond header into an option<duration> (nanoseconds). */
static bool parse_timeout(const field_list_t *entries, const char *name,
                          wasi_http_types_option_duration_t *out) {
    out->is_some = false;
    out->val = 0;
    const wasi_http_types_field_value_t *v = find_header(entries, name);
    if (!v) {
        return true;
    }
    uint64_t ms;
    if (!parse_u64(v->ptr, v->len, &ms)) {
        return false;
    }
    out->is_some = true;
    out->val = ms > UINT64_MAX / 1000000u ? UINT64_MAX : ms * 1000000u;
    return true;
}

/* Fills `c` from the request headers. On failure returns a static error
 * label (for a 400); `c->fwd` must be freed by the caller either way. */
static const char *parse_config(const field_list_t *entries, config_t *c) {
    memset(c, 0, sizeof(*c));
    const wasi_http_types_field_value_t *url = find_header(entries, "x-url");
    if (!url) {
        return "missing x-url";
    }
    if (!parse_url(url, c)) {
        return "bad-x-url";
    }
    c->method = parse_method(find_header(entries, "x-method"));
    c->no_path = is_one(find_header(entries, "x-no-path"));
    c->forward_body = is_one(find_header(entries, "x-forward-body"));
    c->drop_early = is_one(find_header(entries, "x-drop-body-early"));
    const wasi_http_types_field_value_t *mode = find_header(entries, "x-mode");
    c->buffer_mode = mode && str_eq(mode->ptr, mode->len, "buffer");
    if (!parse_timeout(entries, "x-connect-timeout-ms", &c->connect_timeout)) {
        return "bad-x-connect-timeout-ms";
    }
    if (!parse_timeout(entries, "x-first-byte-timeout-ms", &c->first_byte_timeout)) {
        return "bad-x-first-byte-timeout-ms";
    }
    if (!parse_timeout(entries, "x-between-bytes-timeout-ms", &c->between_bytes_timeout)) {
        return "bad-x-between-bytes-timeout-ms";
    }
    const wasi_http_types_field_value_t *conc = find_header(entries, "x-concurrent");
    if (conc) {
        if (!parse_u64(conc->ptr, conc->len, &c->concurrent) || c->concurrent < 1 ||
            c->concurrent > MAX_CONCURRENT) {
            return "bad-x-concurrent";
        }
    }
    for (size_t i = 0; i < entries->len; i++) {
        const field_entry_t *e = &entries->ptr[i];
        static const char PREFIX[] = "x-fwd-";
        size_t plen = sizeof(PREFIX) - 1;
        if (e->f0.len > plen && str_istarts(e->f0.ptr, e->f0.len, PREFIX)) {
            if (!hdrs_add(&c->fwd, NULL, e->f0.ptr + plen, e->f0.len - plen, e->f1.ptr,
                          e->f1.len)) {
                return "guest-out-of-memory";
            }
        }
    }
    return NULL;
}

static const char *header_error_label(header_error_t e) {
    switch (e.tag) {
    case WASI_HTTP_TYPES_HEADER_ERROR_INVALID_SYNTAX:
        return "header-invalid-syntax";
    case WASI_HTTP_TYPES_HEADER_ERROR_FORBIDDEN:
        return "header-forbidden";
    case WASI_HTTP_TYPES_HEADER_ERROR_IMMUTABLE:
        return "header-immutable";
    default:
        return "header-unknown-error";
    }
}

/* Builds one outgoing request (+ options). On failure nothing is leaked and a
 * static label is returned. */
static const char *build_request(const config_t *c, wasi_http_types_own_outgoing_request_t *out,
                                 bool *has_options, wasi_http_types_own_request_options_t *opts) {
    own_fields_t headers;
    header_error_t herr;
    if (!hdrs_to_fields(&c->fwd, &headers, &herr)) {
        return header_error_label(herr);
    }
    wasi_http_types_own_outgoing_request_t req =
        wasi_http_types_constructor_outgoing_request(headers);
    wasi_http_types_borrow_outgoing_request_t rb = wasi_http_types_borrow_outgoing_request(req);

    const char *err = NULL;
    wasi_http_types_method_t method = c->method;
    wasi_http_types_scheme_t scheme = c->scheme;
    proxy_string_t authority = c->authority;
    proxy_string_t path = c->path;
    if (!wasi_http_types_method_outgoing_request_set_method(rb, &method)) {
        err = "set-method-failed";
    } else if (!wasi_http_types_method_outgoing_request_set_scheme(rb, &scheme)) {
        err = "set-scheme-failed";
    } else if (!wasi_http_types_method_outgoing_request_set_authority(rb, &authority)) {
        err = "set-authority-failed";
    } else if (!wasi_http_types_method_outgoing_request_set_path_with_query(
                   rb, c->no_path ? NULL : &path)) {
        err = "set-path-failed";
    }
    if (err) {
        wasi_http_types_outgoing_request_drop_own(req);
        return err;
    }

    *has_options = c->connect_timeout.is_some || c->first_byte_timeout.is_some ||
                   c->between_bytes_timeout.is_some;
    if (*has_options) {
        wasi_http_types_own_request_options_t o = wasi_http_types_constructor_request_options();
        wasi_http_types_borrow_request_options_t ob = wasi_http_types_borrow_request_options(o);
        wasi_http_types_duration_t d;
        if (c->connect_timeout.is_some &&
            !wasi_http_types_method_request_options_set_connect_timeout(
                ob, (d = c->connect_timeout.val, &d))) {
            err = "set-connect-timeout-failed";
        } else if (c->first_byte_timeout.is_some &&
                   !wasi_http_types_method_request_options_set_first_byte_timeout(
                       ob, (d = c->first_byte_timeout.val, &d))) {
            err = "set-first-byte-timeout-failed";
        } else if (c->between_bytes_timeout.is_some &&
                   !wasi_http_types_method_request_options_set_between_bytes_timeout(
                       ob, (d = c->between_bytes_timeout.val, &d))) {
            err = "set-between-bytes-timeout-failed";
        }
        if (err) {
            wasi_http_types_request_options_drop_own(o);
            wasi_http_types_outgoing_request_drop_own(req);
            return err;
        }
        *opts = o;
    }
    *out = req;
    return NULL;
}

/* Calls outgoing-handler.handle. */
static bool send_request(wasi_http_types_own_outgoing_request_t req, bool has_options,
                         wasi_http_types_own_request_options_t opts,
                         own_future_incoming_response_t *fut, const char **err_name) {
    error_code_t code;
    if (!wasi_http_outgoing_handler_handle(req, has_options ? &opts : NULL, fut, &code)) {
        *err_name = error_code_name(&code);
        wasi_http_types_error_code_free(&code);
        return false;
    }
    return true;
}

/* 400 with `x-error: <label>` and body <label>. */
static void respond_400(own_response_outparam_t out, const char *label) {
    hdrs_t h = {0};
    if (!hdrs_add_str(&h, "x-error", label)) {
        hdrs_free(&h);
        respond_error(out, "guest: out of memory");
        return;
    }
    respond(out, 400, &h, label, strlen(label));
}

/* 502 with `x-error: <name>` and body "<name>\n". */
static void respond_502(own_response_outparam_t out, const char *name, const char *send_err,
                        const char *recv_err) {
    hdrs_t h = {0};
    buf_t body = {0};
    bool ok = hdrs_add_str(&h, "x-error", name) &&
              (!send_err || hdrs_add_str(&h, "x-body-send-error", send_err)) &&
              (!recv_err || hdrs_add_str(&h, "x-body-recv-error", recv_err)) &&
              buf_append_str(&body, name) && buf_append_str(&body, "\n");
    if (!ok) {
        hdrs_free(&h);
        buf_free(&body);
        respond_error(out, "guest: out of memory");
        return;
    }
    respond(out, 502, &h, body.ptr, body.len);
    buf_free(&body);
}

/* Appends `<prefix><name>: <value>` for every entry of `fields` (borrowed). */
static bool add_prefixed_fields(hdrs_t *h, const char *prefix,
                                wasi_http_types_borrow_fields_t fields) {
    field_list_t entries = {NULL, 0};
    wasi_http_types_method_fields_entries(fields, &entries);
    bool ok = true;
    for (size_t i = 0; ok && i < entries.len; i++) {
        ok = hdrs_add(h, prefix, entries.ptr[i].f0.ptr, entries.ptr[i].f0.len,
                      entries.ptr[i].f1.ptr, entries.ptr[i].f1.len);
    }
    wasi_http_types_list_tuple2_field_name_field_value_free(&entries);
    return ok;
}

/* x-status and x-resp-* for an origin response. With `trailer_decls`, also
 * appends (last) `trailer: x-body-error` and a copy of every origin `trailer`
 * header, counting them in *trailer_decls. */
static bool describe_response(hdrs_t *h, wasi_http_types_borrow_incoming_response_t rb,
                              size_t *trailer_decls) {
    if (!hdrs_add_u64(h, "x-status", wasi_http_types_method_incoming_response_status(rb))) {
        return false;
    }
    wasi_http_types_own_headers_t headers = wasi_http_types_method_incoming_response_headers(rb);
    field_list_t entries = {NULL, 0};
    wasi_http_types_method_fields_entries(wasi_http_types_borrow_fields(headers), &entries);
    wasi_http_types_fields_drop_own(headers);
    bool ok = true;
    for (size_t i = 0; ok && i < entries.len; i++) {
        ok = hdrs_add(h, "x-resp-", entries.ptr[i].f0.ptr, entries.ptr[i].f0.len,
                      entries.ptr[i].f1.ptr, entries.ptr[i].f1.len);
    }
    if (ok && trailer_decls) {
        *trailer_decls = 0;
        ok = hdrs_add_str(h, "trailer", "x-body-error");
        (*trailer_decls)++;
        for (size_t i = 0; ok && i < entries.len; i++) {
            const field_entry_t *e = &entries.ptr[i];
            if (str_ieq(e->f0.ptr, e->f0.len, "trailer")) {
                ok = hdrs_add(h, NULL, (const uint8_t *)"trailer", 7, e->f1.ptr, e->f1.len);
                (*trailer_decls)++;
            }
        }
    }
    wasi_http_types_list_tuple2_field_name_field_value_free(&entries);
    return ok;
}

/* Streams the incoming request body (and trailers) into `body`, consuming it.
 * Sets *send_err on a write/flush/finish failure, *recv_err when reading the
 * incoming body failed (the outgoing body is then dropped unfinished). */
static void forward_body(wasi_http_types_borrow_incoming_request_t req, own_outgoing_body_t body,
                         const char **send_err, const char **recv_err) {
    out_body_t ob = {.body = body, .stream_open = false};
    if (!wasi_http_types_method_outgoing_body_write(wasi_http_types_borrow_outgoing_body(body),
                                                    &ob.stream)) {
        wasi_http_types_outgoing_body_drop_own(body);
        *send_err = "outgoing-body-write-failed";
        return;
    }
    ob.stream_open = true;
    own_incoming_body_t ib;
    if (!wasi_http_types_method_incoming_request_consume(req, &ib)) {
        abort_body(&ob);
        *recv_err = "incoming-request-consume-failed";
        return;
    }
    own_input_stream_t in;
    if (!wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(ib),
                                                     &in)) {
        wasi_http_types_incoming_body_drop_own(ib);
        abort_body(&ob);
        *recv_err = "incoming-body-stream-failed";
        return;
    }
    borrow_input_stream_t inb = wasi_io_streams_borrow_input_stream(in);
    borrow_output_stream_t outb = wasi_io_streams_borrow_output_stream(ob.stream);
    for (;;) {
        proxy_list_u8_t chunk;
        const char *err = NULL;
        read_status_t st = read_chunk(inb, &chunk, &err);
        if (st == READ_CLOSED) {
            break;
        }
        bool ok = false;
        if (st == READ_FAILED) {
            *recv_err = err;
        } else {
            ok = write_all(outb, chunk.ptr, chunk.len, &err);
            proxy_list_u8_free(&chunk);
            if (!ok) {
                *send_err = err;
            }
        }
        if (!ok) {
            wasi_io_streams_input_stream_drop_own(in);
            wasi_http_types_incoming_body_drop_own(ib);
            abort_body(&ob);
            return;
        }
    }
    wasi_io_streams_input_stream_drop_own(in);

    own_future_trailers_t ft = wasi_http_types_static_incoming_body_finish(ib);
    bool has = false;
    own_fields_t trailers;
    const char *err = NULL;
    if (!wait_trailers(wasi_http_types_borrow_future_trailers(ft), &has, &trailers, &err)) {
        wasi_http_types_future_trailers_drop_own(ft);
        abort_body(&ob);
        *recv_err = err;
        return;
    }
    if (!finish_body(&ob, has ? &trailers : NULL, &err)) {
        *send_err = err;
    }
    wasi_http_types_future_trailers_drop_own(ft);
}

/* x-drop-body-early: read one chunk, drop everything, respond "dropped\n". */
static void drop_early(own_response_outparam_t out, own_incoming_response_t resp, hdrs_t *h) {
    wasi_http_types_borrow_incoming_response_t rb = wasi_http_types_borrow_incoming_response(resp);
    uint16_t status = wasi_http_types_method_incoming_response_status(rb);
    own_incoming_body_t ib;
    if (wasi_http_types_method_incoming_response_consume(rb, &ib)) {
        own_input_stream_t in;
        if (wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(ib),
                                                        &in)) {
            proxy_list_u8_t chunk;
            const char *err = NULL;
            if (read_chunk(wasi_io_streams_borrow_input_stream(in), &chunk, &err) == READ_DATA) {
                proxy_list_u8_free(&chunk);
            }
            wasi_io_streams_input_stream_drop_own(in);
        }
        wasi_http_types_incoming_body_drop_own(ib); /* without finish */
    }
    wasi_http_types_incoming_response_drop_own(resp);

    if (!hdrs_add_u64(h, "x-status", status)) {
        hdrs_free(h);
        respond_error(out, "guest: out of memory");
        return;
    }
    respond(out, 200, h, "dropped\n", 8);
}

/* x-mode: buffer */
static void buffered(own_response_outparam_t out, own_incoming_response_t resp, hdrs_t *h) {
    wasi_http_types_borrow_incoming_response_t rb = wasi_http_types_borrow_incoming_response(resp);
    buf_t body = {0};
    bool ok = describe_response(h, rb, NULL);
    const char *body_err = NULL;
    own_incoming_body_t ib;
    if (ok && !wasi_http_types_method_incoming_response_consume(rb, &ib)) {
        body_err = "incoming-response-consume-failed";
    } else if (ok) {
        own_input_stream_t in;
        if (!wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(ib),
                                                         &in)) {
            wasi_http_types_incoming_body_drop_own(ib);
            body_err = "incoming-body-stream-failed";
        } else {
            read_status_t st;
            for (;;) {
                proxy_list_u8_t chunk;
                st = read_chunk(wasi_io_streams_borrow_input_stream(in), &chunk, &body_err);
                if (st != READ_DATA) {
                    break;
                }
                ok = buf_append(&body, chunk.ptr, chunk.len);
                proxy_list_u8_free(&chunk);
                if (!ok) {
                    break;
                }
            }
            wasi_io_streams_input_stream_drop_own(in);
            if (ok && st == READ_CLOSED) {
                own_future_trailers_t ft = wasi_http_types_static_incoming_body_finish(ib);
                bool has = false;
                own_fields_t trailers;
                if (wait_trailers(wasi_http_types_borrow_future_trailers(ft), &has, &trailers,
                                  &body_err) &&
                    has) {
                    ok = add_prefixed_fields(h, "x-trailer-",
                                             wasi_http_types_borrow_fields(trailers));
                    wasi_http_types_fields_drop_own(trailers);
                }
                wasi_http_types_future_trailers_drop_own(ft);
            } else {
                wasi_http_types_incoming_body_drop_own(ib);
            }
        }
    }
    wasi_http_types_incoming_response_drop_own(resp);
    if (ok && body_err) {
        ok = hdrs_add_str(h, "x-body-error", body_err);
    }
    if (!ok) {
        hdrs_free(h);
        buf_free(&body);
        respond_error(out, "guest: out of memory");
        return;
    }
    respond(out, 200, h, body.ptr, body.len);
    buf_free(&body);
}

/* Trailers `x-body-error: <name>` for a response body; false if rejected. */
static bool error_trailers(const char *name, own_fields_t *out) {
    hdrs_t h = {0};
    header_error_t herr;
    bool ok = hdrs_add_str(&h, "x-body-error", name) && hdrs_to_fields(&h, out, &herr);
    hdrs_free(&h);
    return ok;
}

/* Default mode: respond first, then stream the origin body and trailers. */
static void streamed(own_response_outparam_t out, own_incoming_response_t resp, hdrs_t *h) {
    wasi_http_types_borrow_incoming_response_t rb = wasi_http_types_borrow_incoming_response(resp);
    size_t trailer_decls = 0;
    if (!describe_response(h, rb, &trailer_decls)) {
        hdrs_free(h);
        wasi_http_types_incoming_response_drop_own(resp);
        respond_error(out, "guest: out of memory");
        return;
    }
    own_incoming_body_t ib;
    if (!wasi_http_types_method_incoming_response_consume(rb, &ib)) {
        hdrs_free(h);
        wasi_http_types_incoming_response_drop_own(resp);
        respond_error(out, "guest: incoming-response.consume failed");
        return;
    }
    own_input_stream_t in;
    if (!wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(ib),
                                                     &in)) {
        hdrs_free(h);
        wasi_http_types_incoming_body_drop_own(ib);
        wasi_http_types_incoming_response_drop_own(resp);
        respond_error(out, "guest: incoming-body.stream failed");
        return;
    }
    out_body_t ob;
    if (!start_response_opt(out, 200, h, trailer_decls, &ob)) {
        wasi_io_streams_input_stream_drop_own(in);
        wasi_http_types_incoming_body_drop_own(ib);
        wasi_http_types_incoming_response_drop_own(resp);
        return;
    }

    borrow_input_stream_t inb = wasi_io_streams_borrow_input_stream(in);
    borrow_output_stream_t outb = wasi_io_streams_borrow_output_stream(ob.stream);
    const char *body_err = NULL;
    read_status_t st;
    for (;;) {
        proxy_list_u8_t chunk;
        st = read_chunk(inb, &chunk, &body_err);
        if (st != READ_DATA) {
            break;
        }
        bool ok = write_all(outb, chunk.ptr, chunk.len, NULL);
        proxy_list_u8_free(&chunk);
        if (!ok) {
            /* The client went away: abandon everything. */
            wasi_io_streams_input_stream_drop_own(in);
            wasi_http_types_incoming_body_drop_own(ib);
            wasi_http_types_incoming_response_drop_own(resp);
            abort_body(&ob);
            return;
        }
    }
    wasi_io_streams_input_stream_drop_own(in);

    own_fields_t trailers;
    if (st == READ_CLOSED) {
        own_future_trailers_t ft = wasi_http_types_static_incoming_body_finish(ib);
        bool has = false;
        if (wait_trailers(wasi_http_types_borrow_future_trailers(ft), &has, &trailers,
                          &body_err)) {
            (void)finish_body(&ob, has ? &trailers : NULL, NULL);
            wasi_http_types_future_trailers_drop_own(ft);
            wasi_http_types_incoming_response_drop_own(resp);
            return;
        }
        wasi_http_types_future_trailers_drop_own(ft);
    } else {
        wasi_http_types_incoming_body_drop_own(ib);
    }
    wasi_http_types_incoming_response_drop_own(resp);
    /* The origin body failed: report it in the response trailers. */
    if (error_trailers(body_err, &trailers)) {
        (void)finish_body(&ob, &trailers, NULL);
    } else {
        abort_body(&ob);
    }
}

/* Reads an origin body to its end; returns an error name or NULL. Consumes
 * `resp`. */
static const char *drain_response(own_incoming_response_t resp) {
    wasi_http_types_borrow_incoming_response_t rb = wasi_http_types_borrow_incoming_response(resp);
    const char *err = NULL;
    own_incoming_body_t ib;
    if (!wasi_http_types_method_incoming_response_consume(rb, &ib)) {
        wasi_http_types_incoming_response_drop_own(resp);
        return "incoming-response-consume-failed";
    }
    own_input_stream_t in;
    if (!wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(ib),
                                                     &in)) {
        wasi_http_types_incoming_body_drop_own(ib);
        wasi_http_types_incoming_response_drop_own(resp);
        return "incoming-body-stream-failed";
    }
    read_status_t st;
    for (;;) {
        proxy_list_u8_t chunk;
        st = read_chunk(wasi_io_streams_borrow_input_stream(in), &chunk, &err);
        if (st != READ_DATA) {
            break;
        }
        proxy_list_u8_free(&chunk);
    }
    wasi_io_streams_input_stream_drop_own(in);
    if (st == READ_CLOSED) {
        own_future_trailers_t ft = wasi_http_types_static_incoming_body_finish(ib);
        bool has = false;
        own_fields_t trailers;
        if (wait_trailers(wasi_http_types_borrow_future_trailers(ft), &has, &trailers, &err)) {
            err = NULL;
            if (has) {
                wasi_http_types_fields_drop_own(trailers);
            }
        }
        wasi_http_types_future_trailers_drop_own(ft);
    } else {
        wasi_http_types_incoming_body_drop_own(ib);
    }
    wasi_http_types_incoming_response_drop_own(resp);
    return err;
}

typedef struct {
    bool pending;
    own_future_incoming_response_t fut;
    own_pollable_t pollable;
    bool have_resp;
    own_incoming_response_t resp;
    uint16_t status;
    const char *err;
} slot_t;

/* x-concurrent: N */
static void concurrent(own_response_outparam_t out, const config_t *c) {
    size_t n = (size_t)c->concurrent;
    slot_t slots[MAX_CONCURRENT];
    memset(slots, 0, sizeof(slots));

    /* Send all requests before waiting on any. */
    for (size_t i = 0; i < n; i++) {
        wasi_http_types_own_outgoing_request_t req;
        wasi_http_types_own_request_options_t opts;
        bool has_options = false;
        const char *label = build_request(c, &req, &has_options, &opts);
        if (label) {
            for (size_t j = 0; j < i; j++) {
                if (slots[j].pending) {
                    wasi_http_types_future_incoming_response_drop_own(slots[j].fut);
                }
            }
            respond_400(out, label);
            return;
        }
        slots[i].pending = send_request(req, has_options, opts, &slots[i].fut, &slots[i].err);
    }

    size_t pending = 0;
    for (size_t i = 0; i < n; i++) {
        if (slots[i].pending) {
            slots[i].pollable = wasi_http_types_method_future_incoming_response_subscribe(
                wasi_http_types_borrow_future_incoming_response(slots[i].fut));
            pending++;
        }
    }
    while (pending > 0) {
        wasi_io_poll_borrow_pollable_t list[MAX_CONCURRENT];
        size_t index[MAX_CONCURRENT];
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (slots[i].pending) {
                list[m] = wasi_io_poll_borrow_pollable(slots[i].pollable);
                index[m] = i;
                m++;
            }
        }
        wasi_io_poll_list_borrow_pollable_t in = {list, m};
        proxy_list_u32_t ready = {NULL, 0};
        wasi_io_poll_poll(&in, &ready);
        for (size_t k = 0; k < ready.len; k++) {
            if (ready.ptr[k] >= m) {
                continue;
            }
            slot_t *s = &slots[index[ready.ptr[k]]];
            if (!s->pending) {
                continue; /* reported twice */
            }
            s->have_resp = take_response(wasi_http_types_borrow_future_incoming_response(s->fut),
                                         &s->resp, &s->err);
            wasi_io_poll_pollable_drop_own(s->pollable);
            wasi_http_types_future_incoming_response_drop_own(s->fut);
            s->pending = false;
            pending--;
        }
        proxy_list_u32_free(&ready);
    }

    buf_t body = {0};
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        slot_t *s = &slots[i];
        if (s->have_resp) {
            s->status =
                wasi_http_types_method_incoming_response_status(
                    wasi_http_types_borrow_incoming_response(s->resp));
            s->err = drain_response(s->resp);
        }
        ok = ok && buf_append_u64(&body, i);
        if (s->err) {
            ok = ok && buf_append_str(&body, " error ") && buf_append_str(&body, s->err);
        } else {
            ok = ok && buf_append_str(&body, " ") && buf_append_u64(&body, s->status);
        }
        ok = ok && buf_append_str(&body, "\n");
    }
    if (!ok) {
        buf_free(&body);
        respond_error(out, "guest: out of memory");
        return;
    }
    hdrs_t h = {0};
    respond(out, 200, &h, body.ptr, body.len);
    buf_free(&body);
}

static void run(wasi_http_types_borrow_incoming_request_t req, const config_t *c,
                own_response_outparam_t out) {
    if (c->concurrent) {
        concurrent(out, c);
        return;
    }
    wasi_http_types_own_outgoing_request_t oreq;
    wasi_http_types_own_request_options_t opts;
    bool has_options = false;
    const char *label = build_request(c, &oreq, &has_options, &opts);
    if (label) {
        respond_400(out, label);
        return;
    }
    own_outgoing_body_t obody;
    if (c->forward_body &&
        !wasi_http_types_method_outgoing_request_body(
            wasi_http_types_borrow_outgoing_request(oreq), &obody)) {
        if (has_options) {
            wasi_http_types_request_options_drop_own(opts);
        }
        wasi_http_types_outgoing_request_drop_own(oreq);
        respond_400(out, "outgoing-request-body-failed");
        return;
    }

    own_future_incoming_response_t fut;
    const char *err = NULL;
    if (!send_request(oreq, has_options, opts, &fut, &err)) {
        if (c->forward_body) {
            wasi_http_types_outgoing_body_drop_own(obody);
        }
        respond_502(out, err, NULL, NULL);
        return;
    }
    const char *send_err = NULL;
    const char *recv_err = NULL;
    if (c->forward_body) {
        forward_body(req, obody, &send_err, &recv_err);
    }

    own_incoming_response_t resp;
    if (!wait_response(fut, &resp, &err)) {
        respond_502(out, err, send_err, recv_err);
        return;
    }
    /* Body-forwarding problems (x-forward-body only) go on the final
     * response, first. */
    hdrs_t h = {0};
    if ((send_err && !hdrs_add_str(&h, "x-body-send-error", send_err)) ||
        (recv_err && !hdrs_add_str(&h, "x-body-recv-error", recv_err))) {
        hdrs_free(&h);
        wasi_http_types_incoming_response_drop_own(resp);
        respond_error(out, "guest: out of memory");
        return;
    }
    if (c->drop_early) {
        drop_early(out, resp, &h);
    } else if (c->buffer_mode) {
        buffered(out, resp, &h);
    } else {
        streamed(out, resp, &h);
    }
}

void exports_wasi_http_incoming_handler_handle(own_incoming_request_t request,
                                               own_response_outparam_t response_out) {
    wasi_http_types_borrow_incoming_request_t req = wasi_http_types_borrow_incoming_request(request);
    wasi_http_types_own_headers_t headers = wasi_http_types_method_incoming_request_headers(req);
    field_list_t entries = {NULL, 0};
    wasi_http_types_method_fields_entries(wasi_http_types_borrow_fields(headers), &entries);
    wasi_http_types_fields_drop_own(headers);

    config_t c;
    const char *label = parse_config(&entries, &c);
    if (label) {
        if (strcmp(label, "missing x-url") == 0) {
            respond_text(response_out, 400, label);
        } else {
            respond_400(response_out, label);
        }
    } else {
        run(req, &c, response_out);
    }
    hdrs_free(&c.fwd);
    wasi_http_types_list_tuple2_field_name_field_value_free(&entries);
    wasi_http_types_incoming_request_drop_own(request);
}
