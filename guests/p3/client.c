/*
 * p3-client (WASI 0.3): makes outbound requests with
 * wasi:http/client@0.3.0 `send` (an async import: each send is a subtask),
 * driven by the incoming request's headers.
 *
 *   x-url: scheme://authority[/path?query]   (required; 400 "missing x-url")
 *   x-no-path: 1                 set-path-with-query(none)
 *   x-method: NAME               default GET; GET..PATCH exact (case-sensitive)
 *                                map to the enum cases, anything else other(NAME)
 *   x-fwd-<name>: <value>        outgoing header <name>: <value> (repeats kept)
 *   x-connect-timeout-ms / x-first-byte-timeout-ms / x-between-bytes-timeout-ms
 *                                set on a request-options given to request.new
 *   x-forward-body: 1            the incoming body stream and trailers future
 *                                become the outgoing request's contents and
 *                                trailers (passed to request.new as they are);
 *                                otherwise the request has no contents and
 *                                trailers ok(none)
 *   x-mode: buffer               read the whole origin body before responding
 *   x-drop-body-early: 1         read one chunk, drop the body, respond
 *                                "dropped\n"
 *   x-concurrent: N (1..=64)     N bodiless requests sent at once, each its own
 *                                subtask
 *   x-options-check: 1           after request.new (with a request-options,
 *                                made even when no timeout is asked for), calls
 *                                request.get-options and tries
 *                                set-connect-timeout(1s) on the result:
 *                                `x-options-set: ok|immutable|not-supported|
 *                                other` (or `none` when get-options gave none)
 *                                on the response (the WIT says: immutable)
 *   x-loop: 1                    the outgoing request carries `x-url` (the same
 *                                URL) and `x-loop: 1` too, and its response is
 *                                this guest's response as it is (an internal
 *                                call to itself is then a loop, which the host
 *                                cuts)
 *   x-transmission: 1            before responding, waits for the outgoing
 *                                request's transmission future (the one
 *                                request.new returned): `x-transmission: ok`
 *                                or `x-transmission: <error-code name>`
 *
 * Build errors: 400, `x-error: <label>`, body <label> (no newline), labels
 * header-<invalid-syntax|forbidden|immutable|size-exceeded|other>,
 * set-method-failed, set-scheme-failed, set-authority-failed,
 * set-path-failed, set-connect-timeout-failed, set-first-byte-timeout-failed,
 * set-between-bytes-timeout-failed, bad-x-url, bad-<header name> (unparsable
 * number / x-concurrent out of range). Send errors (client.send returned err):
 * 502, `x-error: <error-code name>` (the WIT case name, e.g.
 * connection-refused, DNS-error, HTTP-request-denied), body
 * "<error-code name>\n".
 *
 * x-options-set and x-transmission come first on the final response (200 or
 * 502), before the headers below.
 *
 * Success (default streaming mode): 200, `x-status`, `x-resp-<name>` per
 * origin header entry, then (last, dropped again if the host refuses them) a
 * copy of each origin `trailer` header, so that HTTP/1.1 servers that only
 * send declared trailers (hyper) pass them on. The origin body is streamed
 * through the guest (read a chunk, write it, wait for the write); the origin
 * trailers become the response trailers; an origin body error (its trailers
 * future resolved to an error) is written to the response's trailers future.
 *
 * x-mode: buffer: 200, `x-status`, `x-resp-<name>`..., then
 * `x-trailer-<name>` per origin trailer, or `x-body-error: <error-code name>`
 * when the origin body failed; body: the origin body (as far as it came).
 *
 * x-drop-body-early: 200, `x-status`, body "dropped\n".
 *
 * x-concurrent: 200, body one line per request in order: "<i> <status>\n",
 * or "<i> error <error-code name>\n" (send error, or its body failed; each
 * response body is read to its end).
 */
#include "common.h"

#include <stdlib.h>
#include <string.h>

#define MAX_CONCURRENT 64

typedef struct {
    service_string_t scheme_str;
    service_string_t authority;
    service_string_t path;
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
    bool options_check;
    bool transmission;
    bool loop;
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
    c->loop = is_one(find_header(entries, "x-loop"));
    if (c->loop && (!hdrs_add(&c->fwd, NULL, (const uint8_t *)"x-url", 5, url->ptr, url->len) ||
                    !hdrs_add_str(&c->fwd, "x-loop", "1"))) {
        return "guest-out-of-memory";
    }
    c->drop_early = is_one(find_header(entries, "x-drop-body-early"));
    c->options_check = is_one(find_header(entries, "x-options-check"));
    c->transmission = is_one(find_header(entries, "x-transmission"));
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

static const char *header_error_label(const header_error_t *e) {
    switch (e->tag) {
    case WASI_HTTP_TYPES_HEADER_ERROR_INVALID_SYNTAX:
        return "header-invalid-syntax";
    case WASI_HTTP_TYPES_HEADER_ERROR_FORBIDDEN:
        return "header-forbidden";
    case WASI_HTTP_TYPES_HEADER_ERROR_IMMUTABLE:
        return "header-immutable";
    case WASI_HTTP_TYPES_HEADER_ERROR_SIZE_EXCEEDED:
        return "header-size-exceeded";
    case WASI_HTTP_TYPES_HEADER_ERROR_OTHER:
        return "header-other";
    default:
        return "header-unknown-error";
    }
}

static const char *options_error_name(const wasi_http_types_request_options_error_t *e) {
    switch (e->tag) {
    case WASI_HTTP_TYPES_REQUEST_OPTIONS_ERROR_NOT_SUPPORTED:
        return "not-supported";
    case WASI_HTTP_TYPES_REQUEST_OPTIONS_ERROR_IMMUTABLE:
        return "immutable";
    default:
        return "other";
    }
}

/* A request-options with the configured timeouts, if any are configured (or
 * `always`). Returns a label on failure (nothing leaked). */
static const char *build_options(const config_t *c, bool always, bool *has,
                                 own_request_options_t *out) {
    *has = always || c->connect_timeout.is_some || c->first_byte_timeout.is_some ||
           c->between_bytes_timeout.is_some;
    if (!*has) {
        return NULL;
    }
    own_request_options_t o = wasi_http_types_constructor_request_options();
    wasi_http_types_borrow_request_options_t ob = wasi_http_types_borrow_request_options(o);
    wasi_http_types_request_options_error_t err;
    wasi_http_types_duration_t d;
    const char *label = NULL;
    if (c->connect_timeout.is_some &&
        !wasi_http_types_method_request_options_set_connect_timeout(
            ob, (d = c->connect_timeout.val, &d), &err)) {
        label = "set-connect-timeout-failed";
    } else if (c->first_byte_timeout.is_some &&
               !wasi_http_types_method_request_options_set_first_byte_timeout(
                   ob, (d = c->first_byte_timeout.val, &d), &err)) {
        label = "set-first-byte-timeout-failed";
    } else if (c->between_bytes_timeout.is_some &&
               !wasi_http_types_method_request_options_set_between_bytes_timeout(
                   ob, (d = c->between_bytes_timeout.val, &d), &err)) {
        label = "set-between-bytes-timeout-failed";
    }
    if (label) {
        wasi_http_types_request_options_error_free(&err);
        wasi_http_types_request_options_drop_own(o);
        return label;
    }
    *out = o;
    return NULL;
}

/* request.get-options + set-connect-timeout on the result. */
static const char *check_options(borrow_request_t rb) {
    own_request_options_t o;
    if (!wasi_http_types_method_request_get_options(rb, &o)) {
        return "none";
    }
    wasi_http_types_duration_t d = 1000000000u;
    wasi_http_types_request_options_error_t err;
    const char *result = "ok";
    if (!wasi_http_types_method_request_options_set_connect_timeout(
            wasi_http_types_borrow_request_options(o), &d, &err)) {
        result = options_error_name(&err);
        wasi_http_types_request_options_error_free(&err);
    }
    wasi_http_types_request_options_drop_own(o);
    return result;
}

/* Builds one outgoing request. `body` (consumed either way) gives its
 * contents and trailers; NULL: none and ok(none). On failure nothing is
 * leaked and a static label is returned. */
static const char *build_request(task_t *t, const config_t *c, body_in_t *body,
                                 own_request_t *out, status_reader_t *transmission,
                                 const char **options_set) {
    bool has_options = false;
    own_request_options_t opts;
    const char *label = build_options(c, c->options_check, &has_options, &opts);
    if (label) {
        if (body) {
            body_in_drop(body);
        }
        return label;
    }
    own_fields_t headers;
    header_error_t herr;
    if (!hdrs_to_fields(&c->fwd, &headers, &herr)) {
        label = header_error_label(&herr);
        wasi_http_types_header_error_free(&herr);
        if (has_options) {
            wasi_http_types_request_options_drop_own(opts);
        }
        if (body) {
            body_in_drop(body);
        }
        return label;
    }

    trailers_reader_t trailers;
    if (body) {
        trailers = body->trailers;
    } else {
        trailers_writer_t tw;
        trailers = wasi_http_types_future_result_option_own_trailers_error_code_new(&tw);
        write_trailers_none(t, tw);
    }
    wasi_http_types_tuple2_own_request_future_result_void_error_code_t ret;
    wasi_http_types_static_request_new(headers, body ? &body->body : NULL, trailers,
                                       has_options ? &opts : NULL, &ret);
    own_request_t req = ret.f0;
    borrow_request_t rb = wasi_http_types_borrow_request(req);

    wasi_http_types_method_t method = c->method;
    wasi_http_types_scheme_t scheme = c->scheme;
    service_string_t authority = c->authority;
    service_string_t path = c->path;
    if (!wasi_http_types_method_request_set_method(rb, &method)) {
        label = "set-method-failed";
    } else if (!wasi_http_types_method_request_set_scheme(rb, &scheme)) {
        label = "set-scheme-failed";
    } else if (!wasi_http_types_method_request_set_authority(rb, &authority)) {
        label = "set-authority-failed";
    } else if (!wasi_http_types_method_request_set_path_with_query(rb,
                                                                   c->no_path ? NULL : &path)) {
        label = "set-path-failed";
    }
    if (label) {
        wasi_http_types_future_result_void_error_code_drop_readable(ret.f1);
        wasi_http_types_request_drop_own(req);
        return label;
    }
    if (options_set) {
        *options_set = c->options_check ? check_options(rb) : NULL;
    }
    *out = req;
    *transmission = ret.f1;
    return NULL;
}

/* 400 with `x-error: <label>` and body <label>. */
static void respond_400(task_t *t, const char *label) {
    hdrs_t h = {0};
    if (!hdrs_add_str(&h, "x-error", label)) {
        hdrs_free(&h);
        task_return_internal(t, "guest: out of memory");
        return;
    }
    respond(t, 400, &h, label, strlen(label));
}

/* Appends `<prefix><name>: <value>` for every entry of `entries`. */
static bool add_prefixed(hdrs_t *h, const char *prefix, const field_list_t *entries) {
    bool ok = true;
    for (size_t i = 0; ok && i < entries->len; i++) {
        ok = hdrs_add(h, prefix, entries->ptr[i].f0.ptr, entries->ptr[i].f0.len,
                      entries->ptr[i].f1.ptr, entries->ptr[i].f1.len);
    }
    return ok;
}

/* x-status and x-resp-* for an origin response. With `trailer_decls`, also
 * appends (last) a copy of every origin `trailer` header, counting them. */
static bool describe_response(hdrs_t *h, borrow_response_t rb, size_t *trailer_decls) {
    if (!hdrs_add_u64(h, "x-status", wasi_http_types_method_response_get_status_code(rb))) {
        return false;
    }
    own_fields_t headers = wasi_http_types_method_response_get_headers(rb);
    field_list_t entries;
    fields_entries(wasi_http_types_borrow_fields(headers), &entries);
    wasi_http_types_fields_drop_own(headers);
    bool ok = add_prefixed(h, "x-resp-", &entries);
    if (ok && trailer_decls) {
        *trailer_decls = 0;
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

/* ------------------------------------------------------- single send --- */

typedef struct {
    config_t cfg;
    own_request_t request;
    status_reader_t transmission;
    const char *options_set;
    wasi_http_client_result_own_response_error_code_t result;
    status_result_t tx;
    const char *tx_name;
    hdrs_t h; /* the final response's headers so far */
    /* the origin body */
    body_in_t in;
    read_op_t rd;
    trailers_result_t trailers;
    buf_t body;
    uint8_t *buf;
} single_t;

static void respond_502(task_t *t, single_t *s, const char *name) {
    buf_t body = {0};
    bool ok = hdrs_add_str(&s->h, "x-error", name) && buf_append_str(&body, name) &&
              buf_append_str(&body, "\n");
    if (!ok) {
        hdrs_free(&s->h);
        buf_free(&body);
        task_return_internal(t, "guest: out of memory");
        return;
    }
    respond(t, 502, &s->h, body.ptr, body.len);
    buf_free(&body);
}

static void drop_early_read(task_t *t, void *arg, size_t n, bool ended) {
    single_t *s = arg;
    body_in_drop(&s->in);
    respond(t, 200, &s->h, "dropped\n", 8);
}

static void buffered_read(task_t *t, void *arg, size_t n, bool ended);

static void buffered_trailers(task_t *t, void *arg, bool ok) {
    single_t *s = arg;
    bool built = true;
    if (!ok) {
        built = hdrs_add_str(&s->h, "x-body-error", "trailers-missing");
    } else if (s->trailers.is_err) {
        built = hdrs_add_str(&s->h, "x-body-error", error_code_name(&s->trailers.val.err));
        wasi_http_types_error_code_free(&s->trailers.val.err);
    } else if (s->trailers.val.ok.is_some) {
        own_fields_t f = s->trailers.val.ok.val;
        field_list_t entries;
        fields_entries(wasi_http_types_borrow_fields(f), &entries);
        wasi_http_types_fields_drop_own(f);
        built = add_prefixed(&s->h, "x-trailer-", &entries);
        wasi_http_types_list_tuple2_field_name_field_value_free(&entries);
    }
    if (!built) {
        hdrs_free(&s->h);
        buf_free(&s->body);
        task_return_internal(t, "guest: out of memory");
        return;
    }
    respond(t, 200, &s->h, s->body.ptr, s->body.len);
    buf_free(&s->body);
}

static void buffered_read(task_t *t, void *arg, size_t n, bool ended) {
    single_t *s = arg;
    if (!buf_append(&s->body, s->buf, n)) {
        body_in_drop(&s->in);
        hdrs_free(&s->h);
        buf_free(&s->body);
        task_return_internal(t, "guest: out of memory");
        return;
    }
    if (ended) {
        wasi_http_types_stream_u8_drop_readable(s->in.body);
        read_trailers(t, s->in.trailers, &s->trailers, buffered_trailers, s);
        return;
    }
    read_some(t, &s->rd, s->in.body, s->buf, CHUNK_SIZE, buffered_read, s);
}

/* The send and the optional transmission wait are over: respond. */
static void single_respond(task_t *t, single_t *s) {
    bool ok = (!s->options_set || hdrs_add_str(&s->h, "x-options-set", s->options_set)) &&
              (!s->tx_name || hdrs_add_str(&s->h, "x-transmission", s->tx_name));
    if (!ok) {
        hdrs_free(&s->h);
        if (!s->result.is_err) {
            wasi_http_types_response_drop_own(s->result.val.ok);
        } else {
            wasi_http_types_error_code_free(&s->result.val.err);
        }
        task_return_internal(t, "guest: out of memory");
        return;
    }
    if (s->result.is_err) {
        respond_502(t, s, error_code_name(&s->result.val.err));
        wasi_http_types_error_code_free(&s->result.val.err);
        return;
    }
    own_response_t resp = s->result.val.ok;
    borrow_response_t rb = wasi_http_types_borrow_response(resp);

    if (s->cfg.loop) {
        /* The response received is this guest's response, as it is. */
        hdrs_free(&s->h);
        task_return_response(t, resp);
        return;
    }
    if (s->cfg.drop_early) {
        if (!hdrs_add_u64(&s->h, "x-status", wasi_http_types_method_response_get_status_code(rb))) {
            hdrs_free(&s->h);
            wasi_http_types_response_drop_own(resp);
            task_return_internal(t, "guest: out of memory");
            return;
        }
        s->buf = task_alloc(t, CHUNK_SIZE);
        consume_response(t, resp, &s->in);
        read_some(t, &s->rd, s->in.body, s->buf, CHUNK_SIZE, drop_early_read, s);
        return;
    }
    if (s->cfg.buffer_mode) {
        if (!describe_response(&s->h, rb, NULL)) {
            hdrs_free(&s->h);
            wasi_http_types_response_drop_own(resp);
            task_return_internal(t, "guest: out of memory");
            return;
        }
        s->buf = task_alloc(t, CHUNK_SIZE);
        consume_response(t, resp, &s->in);
        read_some(t, &s->rd, s->in.body, s->buf, CHUNK_SIZE, buffered_read, s);
        return;
    }
    size_t trailer_decls = 0;
    if (!describe_response(&s->h, rb, &trailer_decls)) {
        hdrs_free(&s->h);
        wasi_http_types_response_drop_own(resp);
        task_return_internal(t, "guest: out of memory");
        return;
    }
    body_out_t out;
    if (!respond_stream(t, 200, &s->h, trailer_decls, &out)) {
        wasi_http_types_response_drop_own(resp);
        return;
    }
    body_in_t in;
    consume_response(t, resp, &in);
    pipe_body(t, in, out);
}

static void single_transmitted(task_t *t, void *arg, bool ok) {
    single_t *s = arg;
    if (!ok) {
        s->tx_name = "transmission-future-dropped";
    } else if (s->tx.is_err) {
        s->tx_name = error_code_name(&s->tx.val.err);
        wasi_http_types_error_code_free(&s->tx.val.err);
    } else {
        s->tx_name = "ok";
    }
    single_respond(t, s);
}

static void single_sent(task_t *t, void *arg, uint32_t code) {
    single_t *s = arg;
    if (s->cfg.transmission) {
        read_status(t, s->transmission, &s->tx, single_transmitted, s);
        return;
    }
    single_respond(t, s);
}

static void run_single(task_t *t, own_request_t incoming, const config_t *c) {
    single_t *s = task_alloc(t, sizeof(*s));
    s->cfg = *c;
    body_in_t in;
    if (c->forward_body) {
        consume_request(t, incoming, &in);
    } else {
        wasi_http_types_request_drop_own(incoming);
    }
    const char *label = build_request(t, c, c->forward_body ? &in : NULL, &s->request,
                                      &s->transmission, &s->options_set);
    if (label) {
        respond_400(t, label);
        return;
    }
    if (!c->transmission) {
        wasi_http_types_future_result_void_error_code_drop_readable(s->transmission);
    }
    task_on_subtask(t, wasi_http_client_send(s->request, &s->result), single_sent, s);
}

/* -------------------------------------------------------- concurrent --- */

typedef struct conc conc_t;

typedef struct {
    conc_t *parent;
    own_request_t request;
    wasi_http_client_result_own_response_error_code_t result;
    uint16_t status;
    const char *err;
    body_in_t in;
    read_op_t rd;
    trailers_result_t trailers;
    uint8_t buf[4096];
} slot_t;

struct conc {
    size_t n;
    size_t pending;
    slot_t *slots;
};

static void conc_slot_done(task_t *t, slot_t *s) {
    conc_t *c = s->parent;
    if (--c->pending > 0) {
        return;
    }
    buf_t body = {0};
    bool ok = true;
    for (size_t i = 0; i < c->n; i++) {
        slot_t *sl = &c->slots[i];
        ok = ok && buf_append_u64(&body, i);
        if (sl->err) {
            ok = ok && buf_append_str(&body, " error ") && buf_append_str(&body, sl->err);
        } else {
            ok = ok && buf_append_str(&body, " ") && buf_append_u64(&body, sl->status);
        }
        ok = ok && buf_append_str(&body, "\n");
    }
    if (!ok) {
        buf_free(&body);
        task_return_internal(t, "guest: out of memory");
        return;
    }
    hdrs_t h = {0};
    respond(t, 200, &h, body.ptr, body.len);
    buf_free(&body);
}

static void conc_trailers(task_t *t, void *arg, bool ok) {
    slot_t *s = arg;
    if (!ok) {
        s->err = "trailers-missing";
    } else if (s->trailers.is_err) {
        s->err = error_code_name(&s->trailers.val.err);
        wasi_http_types_error_code_free(&s->trailers.val.err);
    } else if (s->trailers.val.ok.is_some) {
        wasi_http_types_fields_drop_own(s->trailers.val.ok.val);
    }
    conc_slot_done(t, s);
}

static void conc_read(task_t *t, void *arg, size_t n, bool ended) {
    slot_t *s = arg;
    if (ended) {
        wasi_http_types_stream_u8_drop_readable(s->in.body);
        read_trailers(t, s->in.trailers, &s->trailers, conc_trailers, s);
        return;
    }
    read_some(t, &s->rd, s->in.body, s->buf, sizeof(s->buf), conc_read, s);
}

static void conc_sent(task_t *t, void *arg, uint32_t code) {
    slot_t *s = arg;
    if (s->result.is_err) {
        s->err = error_code_name(&s->result.val.err);
        wasi_http_types_error_code_free(&s->result.val.err);
        conc_slot_done(t, s);
        return;
    }
    own_response_t resp = s->result.val.ok;
    s->status = wasi_http_types_method_response_get_status_code(
        wasi_http_types_borrow_response(resp));
    consume_response(t, resp, &s->in);
    read_some(t, &s->rd, s->in.body, s->buf, sizeof(s->buf), conc_read, s);
}

static void run_concurrent(task_t *t, own_request_t incoming, const config_t *c) {
    wasi_http_types_request_drop_own(incoming);
    conc_t *cc = task_alloc(t, sizeof(*cc));
    cc->n = (size_t)c->concurrent;
    cc->slots = task_alloc(t, cc->n * sizeof(slot_t));
    /* Build every request before sending any. */
    for (size_t i = 0; i < cc->n; i++) {
        status_reader_t transmission;
        const char *label =
            build_request(t, c, NULL, &cc->slots[i].request, &transmission, NULL);
        if (label) {
            for (size_t j = 0; j < i; j++) {
                wasi_http_types_request_drop_own(cc->slots[j].request);
            }
            respond_400(t, label);
            return;
        }
        wasi_http_types_future_result_void_error_code_drop_readable(transmission);
        cc->slots[i].parent = cc;
    }
    cc->pending = cc->n;
    for (size_t i = 0; i < cc->n; i++) {
        slot_t *s = &cc->slots[i];
        task_on_subtask(t, wasi_http_client_send(s->request, &s->result), conc_sent, s);
    }
}

/* ------------------------------------------------------------- main ---- */

void guest_handle(task_t *t, own_request_t request) {
    field_list_t entries;
    request_header_entries(wasi_http_types_borrow_request(request), &entries);

    config_t c;
    const char *label = parse_config(&entries, &c);
    if (label) {
        wasi_http_types_request_drop_own(request);
        if (strcmp(label, "missing x-url") == 0) {
            respond_text(t, 400, label);
        } else {
            respond_400(t, label);
        }
    } else if (c.concurrent) {
        run_concurrent(t, request, &c);
    } else {
        run_single(t, request, &c);
    }
    /* Everything borrowed from `entries` has been copied by now. */
    hdrs_free(&c.fwd);
    wasi_http_types_list_tuple2_field_name_field_value_free(&entries);
}
