/* Shared helpers for the wasi-http-host test guests. See common.h. */
#include "common.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ strings --- */

proxy_string_t str_view(const char *s) {
    proxy_string_t r = {(uint8_t *)s, strlen(s)};
    return r;
}

bool str_eq(const uint8_t *p, size_t n, const char *lit) {
    size_t m = strlen(lit);
    return n == m && (n == 0 || memcmp(p, lit, n) == 0);
}

static uint8_t ascii_lower(uint8_t c) {
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c - 'A' + 'a') : c;
}

bool str_istarts(const uint8_t *p, size_t n, const char *prefix) {
    size_t m = strlen(prefix);
    if (n < m) {
        return false;
    }
    for (size_t i = 0; i < m; i++) {
        if (ascii_lower(p[i]) != ascii_lower((uint8_t)prefix[i])) {
            return false;
        }
    }
    return true;
}

bool str_ieq(const uint8_t *p, size_t n, const char *lit) {
    return n == strlen(lit) && str_istarts(p, n, lit);
}

bool parse_u64(const uint8_t *p, size_t n, uint64_t *out) {
    if (n == 0 || n > 20) {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* --------------------------------------------------- growable buffer --- */

bool buf_append(buf_t *b, const void *data, size_t len) {
    if (len == 0) {
        return true;
    }
    if (b->len + len < b->len) {
        return false;
    }
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + len) {
            if (cap > SIZE_MAX / 2) {
                cap = b->len + len;
                break;
            }
            cap *= 2;
        }
        uint8_t *p = realloc(b->ptr, cap);
        if (!p) {
            return false;
        }
        b->ptr = p;
        b->cap = cap;
    }
    memcpy(b->ptr + b->len, data, len);
    b->len += len;
    return true;
}

bool buf_append_str(buf_t *b, const char *s) {
    return buf_append(b, s, strlen(s));
}

static size_t fmt_u64(char out[21], uint64_t v) {
    char tmp[21];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + (v % 10));
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) {
        out[i] = tmp[n - 1 - i];
    }
    out[n] = 0;
    return n;
}

bool buf_append_u64(buf_t *b, uint64_t v) {
    char s[21];
    size_t n = fmt_u64(s, v);
    return buf_append(b, s, n);
}

void buf_free(buf_t *b) {
    free(b->ptr);
    b->ptr = NULL;
    b->len = b->cap = 0;
}

/* ------------------------------------------------------- header lists --- */

static uint8_t *dup_bytes(const void *p, size_t n) {
    uint8_t *r = malloc(n ? n : 1);
    if (r && n) {
        memcpy(r, p, n);
    }
    return r;
}

bool hdrs_add(hdrs_t *h, const char *prefix, const uint8_t *name, size_t name_len,
              const uint8_t *value, size_t value_len) {
    if (h->len == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 8;
        field_entry_t *p = realloc(h->ptr, cap * sizeof(*p));
        if (!p) {
            return false;
        }
        h->ptr = p;
        h->cap = cap;
    }
    size_t plen = prefix ? strlen(prefix) : 0;
    uint8_t *n = malloc(plen + name_len + 1);
    uint8_t *v = dup_bytes(value, value_len);
    if (!n || !v) {
        free(n);
        free(v);
        return false;
    }
    if (plen) {
        memcpy(n, prefix, plen);
    }
    if (name_len) {
        memcpy(n + plen, name, name_len);
    }
    field_entry_t *e = &h->ptr[h->len++];
    e->f0.ptr = n;
    e->f0.len = plen + name_len;
    e->f1.ptr = v;
    e->f1.len = value_len;
    return true;
}

bool hdrs_add_str(hdrs_t *h, const char *name, const char *value) {
    return hdrs_add(h, NULL, (const uint8_t *)name, strlen(name), (const uint8_t *)value,
                    strlen(value));
}

bool hdrs_add_u64(hdrs_t *h, const char *name, uint64_t value) {
    char s[21];
    size_t n = fmt_u64(s, value);
    return hdrs_add(h, NULL, (const uint8_t *)name, strlen(name), (const uint8_t *)s, n);
}

void hdrs_free(hdrs_t *h) {
    for (size_t i = 0; i < h->len; i++) {
        free(h->ptr[i].f0.ptr);
        free(h->ptr[i].f1.ptr);
    }
    free(h->ptr);
    h->ptr = NULL;
    h->len = h->cap = 0;
}

bool hdrs_to_fields(const hdrs_t *h, own_fields_t *out, header_error_t *err) {
    field_list_t list = {h->ptr, h->len};
    return wasi_http_types_static_fields_from_list(&list, out, err);
}

const wasi_http_types_field_value_t *find_header(const field_list_t *entries, const char *name) {
    for (size_t i = 0; i < entries->len; i++) {
        if (str_ieq(entries->ptr[i].f0.ptr, entries->ptr[i].f0.len, name)) {
            return &entries->ptr[i].f1;
        }
    }
    return NULL;
}

/* ----------------------------------------------------------- names ------ */

/* Indexed by the generated WASI_HTTP_TYPES_ERROR_CODE_* tags (WIT order). */
static const char *const ERROR_CODE_NAMES[] = {
    [WASI_HTTP_TYPES_ERROR_CODE_DNS_TIMEOUT] = "DNS-timeout",
    [WASI_HTTP_TYPES_ERROR_CODE_DNS_ERROR] = "DNS-error",
    [WASI_HTTP_TYPES_ERROR_CODE_DESTINATION_NOT_FOUND] = "destination-not-found",
    [WASI_HTTP_TYPES_ERROR_CODE_DESTINATION_UNAVAILABLE] = "destination-unavailable",
    [WASI_HTTP_TYPES_ERROR_CODE_DESTINATION_IP_PROHIBITED] = "destination-IP-prohibited",
    [WASI_HTTP_TYPES_ERROR_CODE_DESTINATION_IP_UNROUTABLE] = "destination-IP-unroutable",
    [WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_REFUSED] = "connection-refused",
    [WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_TERMINATED] = "connection-terminated",
    [WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_TIMEOUT] = "connection-timeout",
    [WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_READ_TIMEOUT] = "connection-read-timeout",
    [WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_WRITE_TIMEOUT] = "connection-write-timeout",
    [WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_LIMIT_REACHED] = "connection-limit-reached",
    [WASI_HTTP_TYPES_ERROR_CODE_TLS_PROTOCOL_ERROR] = "TLS-protocol-error",
    [WASI_HTTP_TYPES_ERROR_CODE_TLS_CERTIFICATE_ERROR] = "TLS-certificate-error",
    [WASI_HTTP_TYPES_ERROR_CODE_TLS_ALERT_RECEIVED] = "TLS-alert-received",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_DENIED] = "HTTP-request-denied",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_LENGTH_REQUIRED] = "HTTP-request-length-required",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_BODY_SIZE] = "HTTP-request-body-size",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_METHOD_INVALID] = "HTTP-request-method-invalid",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_URI_INVALID] = "HTTP-request-URI-invalid",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_URI_TOO_LONG] = "HTTP-request-URI-too-long",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_HEADER_SECTION_SIZE] =
        "HTTP-request-header-section-size",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_HEADER_SIZE] = "HTTP-request-header-size",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_TRAILER_SECTION_SIZE] =
        "HTTP-request-trailer-section-size",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_TRAILER_SIZE] = "HTTP-request-trailer-size",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_INCOMPLETE] = "HTTP-response-incomplete",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_HEADER_SECTION_SIZE] =
        "HTTP-response-header-section-size",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_HEADER_SIZE] = "HTTP-response-header-size",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_BODY_SIZE] = "HTTP-response-body-size",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_TRAILER_SECTION_SIZE] =
        "HTTP-response-trailer-section-size",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_TRAILER_SIZE] = "HTTP-response-trailer-size",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_TRANSFER_CODING] = "HTTP-response-transfer-coding",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_CONTENT_CODING] = "HTTP-response-content-coding",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_TIMEOUT] = "HTTP-response-timeout",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_UPGRADE_FAILED] = "HTTP-upgrade-failed",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_PROTOCOL_ERROR] = "HTTP-protocol-error",
    [WASI_HTTP_TYPES_ERROR_CODE_LOOP_DETECTED] = "loop-detected",
    [WASI_HTTP_TYPES_ERROR_CODE_CONFIGURATION_ERROR] = "configuration-error",
    [WASI_HTTP_TYPES_ERROR_CODE_INTERNAL_ERROR] = "internal-error",
};

_Static_assert(sizeof(ERROR_CODE_NAMES) / sizeof(ERROR_CODE_NAMES[0]) ==
                   WASI_HTTP_TYPES_ERROR_CODE_INTERNAL_ERROR + 1,
               "error-code name table out of sync with the WIT");

const char *error_code_name(const error_code_t *code) {
    size_t n = sizeof(ERROR_CODE_NAMES) / sizeof(ERROR_CODE_NAMES[0]);
    if (code->tag < n && ERROR_CODE_NAMES[code->tag]) {
        return ERROR_CODE_NAMES[code->tag];
    }
    return "unknown-error-code";
}

const char *header_error_name(header_error_t err) {
    switch (err.tag) {
    case WASI_HTTP_TYPES_HEADER_ERROR_INVALID_SYNTAX:
        return "invalid-syntax";
    case WASI_HTTP_TYPES_HEADER_ERROR_FORBIDDEN:
        return "forbidden";
    case WASI_HTTP_TYPES_HEADER_ERROR_IMMUTABLE:
        return "immutable";
    default:
        return "unknown-header-error";
    }
}

const char *method_name(const wasi_http_types_method_t *m) {
    switch (m->tag) {
    case WASI_HTTP_TYPES_METHOD_GET:
        return "GET";
    case WASI_HTTP_TYPES_METHOD_HEAD:
        return "HEAD";
    case WASI_HTTP_TYPES_METHOD_POST:
        return "POST";
    case WASI_HTTP_TYPES_METHOD_PUT:
        return "PUT";
    case WASI_HTTP_TYPES_METHOD_DELETE:
        return "DELETE";
    case WASI_HTTP_TYPES_METHOD_CONNECT:
        return "CONNECT";
    case WASI_HTTP_TYPES_METHOD_OPTIONS:
        return "OPTIONS";
    case WASI_HTTP_TYPES_METHOD_TRACE:
        return "TRACE";
    case WASI_HTTP_TYPES_METHOD_PATCH:
        return "PATCH";
    default:
        return NULL;
    }
}

/* -------------------------------------------------------------- io ----- */

void wait_pollable(own_pollable_t p) {
    wasi_io_poll_borrow_pollable_t b = wasi_io_poll_borrow_pollable(p);
    wasi_io_poll_list_borrow_pollable_t list = {&b, 1};
    proxy_list_u32_t ready = {NULL, 0};
    wasi_io_poll_poll(&list, &ready);
    proxy_list_u32_free(&ready);
    wasi_io_poll_pollable_drop_own(p);
}

const char *stream_error_name(wasi_io_streams_stream_error_t *e) {
    if (e->tag != WASI_IO_STREAMS_STREAM_ERROR_LAST_OPERATION_FAILED) {
        return "stream-closed";
    }
    wasi_io_error_own_error_t io_err = e->val.last_operation_failed;
    const char *name = "stream-error";
    error_code_t code;
    if (wasi_http_types_http_error_code(wasi_io_error_borrow_error(io_err), &code)) {
        name = error_code_name(&code);
        wasi_http_types_error_code_free(&code);
    }
    wasi_io_error_error_drop_own(io_err);
    return name;
}

bool write_all(borrow_output_stream_t s, const void *data, size_t len, const char **err_name) {
    const uint8_t *p = data;
    while (len > 0) {
        uint64_t permit = 0;
        wasi_io_streams_stream_error_t e;
        if (!wasi_io_streams_method_output_stream_check_write(s, &permit, &e)) {
            const char *name = stream_error_name(&e);
            if (err_name) {
                *err_name = name;
            }
            return false;
        }
        if (permit == 0) {
            wait_pollable(wasi_io_streams_method_output_stream_subscribe(s));
            continue;
        }
        size_t n = len;
        if ((uint64_t)n > permit) {
            n = (size_t)permit;
        }
        if (n > CHUNK_SIZE) {
            n = CHUNK_SIZE;
        }
        proxy_list_u8_t chunk = {(uint8_t *)p, n};
        if (!wasi_io_streams_method_output_stream_write(s, &chunk, &e)) {
            const char *name = stream_error_name(&e);
            if (err_name) {
                *err_name = name;
            }
            return false;
        }
        p += n;
        len -= n;
    }
    return true;
}

bool flush_wait(borrow_output_stream_t s, const char **err_name) {
    wasi_io_streams_stream_error_t e;
    if (!wasi_io_streams_method_output_stream_flush(s, &e)) {
        const char *name = stream_error_name(&e);
        if (err_name) {
            *err_name = name;
        }
        return false;
    }
    for (;;) {
        uint64_t permit = 0;
        if (!wasi_io_streams_method_output_stream_check_write(s, &permit, &e)) {
            const char *name = stream_error_name(&e);
            if (err_name) {
                *err_name = name;
            }
            return false;
        }
        if (permit > 0) {
            return true;
        }
        wait_pollable(wasi_io_streams_method_output_stream_subscribe(s));
    }
}

read_status_t read_chunk(borrow_input_stream_t s, proxy_list_u8_t *chunk, const char **err_name) {
    for (;;) {
        wasi_io_streams_stream_error_t e;
        proxy_list_u8_t data = {NULL, 0};
        if (!wasi_io_streams_method_input_stream_blocking_read(s, CHUNK_SIZE, &data, &e)) {
            if (e.tag == WASI_IO_STREAMS_STREAM_ERROR_CLOSED) {
                return READ_CLOSED;
            }
            const char *name = stream_error_name(&e);
            if (err_name) {
                *err_name = name;
            }
            return READ_FAILED;
        }
        if (data.len > 0) {
            *chunk = data;
            return READ_DATA;
        }
        proxy_list_u8_free(&data);
        /* An empty blocking read is allowed; wait for readiness explicitly. */
        wait_pollable(wasi_io_streams_method_input_stream_subscribe(s));
    }
}

bool wait_trailers(wasi_http_types_borrow_future_trailers_t ft, bool *has, own_fields_t *trailers,
                   const char **err_name) {
    wasi_http_types_result_result_option_own_trailers_error_code_void_t r;
    while (!wasi_http_types_method_future_trailers_get(ft, &r)) {
        wait_pollable(wasi_http_types_method_future_trailers_subscribe(ft));
    }
    *has = false;
    if (r.is_err) {
        *err_name = "trailers-already-taken";
        return false;
    }
    if (r.val.ok.is_err) {
        *err_name = error_code_name(&r.val.ok.val.err);
        wasi_http_types_error_code_free(&r.val.ok.val.err);
        return false;
    }
    if (r.val.ok.val.ok.is_some) {
        *has = true;
        *trailers = r.val.ok.val.ok.val;
    }
    return true;
}

bool take_response(wasi_http_types_borrow_future_incoming_response_t fut,
                   own_incoming_response_t *resp, const char **err_name) {
    wasi_http_types_result_result_own_incoming_response_error_code_void_t r;
    if (!wasi_http_types_method_future_incoming_response_get(fut, &r)) {
        *err_name = "response-not-ready";
        return false;
    }
    if (r.is_err) {
        *err_name = "response-already-taken";
        return false;
    }
    if (r.val.ok.is_err) {
        *err_name = error_code_name(&r.val.ok.val.err);
        wasi_http_types_error_code_free(&r.val.ok.val.err);
        return false;
    }
    *resp = r.val.ok.val.ok;
    return true;
}

bool wait_response(own_future_incoming_response_t fut, own_incoming_response_t *resp,
                   const char **err_name) {
    wasi_http_types_borrow_future_incoming_response_t b =
        wasi_http_types_borrow_future_incoming_response(fut);
    wait_pollable(wasi_http_types_method_future_incoming_response_subscribe(b));
    bool ok = take_response(b, resp, err_name);
    wasi_http_types_future_incoming_response_drop_own(fut);
    return ok;
}

/* ------------------------------------------------------ responding ----- */

void respond_error(own_response_outparam_t out, const char *msg) {
    wasi_http_types_result_own_outgoing_response_error_code_t r;
    memset(&r, 0, sizeof(r));
    r.is_err = true;
    r.val.err.tag = WASI_HTTP_TYPES_ERROR_CODE_INTERNAL_ERROR;
    r.val.err.val.internal_error.is_some = true;
    r.val.err.val.internal_error.val = str_view(msg);
    wasi_http_types_static_response_outparam_set(out, &r);
}

bool start_response_fields(own_response_outparam_t out, uint16_t status, own_fields_t headers,
                           out_body_t *ob) {
    ob->stream_open = false;
    own_outgoing_response_t resp = wasi_http_types_constructor_outgoing_response(headers);
    wasi_http_types_borrow_outgoing_response_t rb = wasi_http_types_borrow_outgoing_response(resp);
    if (!wasi_http_types_method_outgoing_response_set_status_code(rb, status)) {
        wasi_http_types_outgoing_response_drop_own(resp);
        respond_error(out, "guest: set-status-code failed");
        return false;
    }
    if (!wasi_http_types_method_outgoing_response_body(rb, &ob->body)) {
        wasi_http_types_outgoing_response_drop_own(resp);
        respond_error(out, "guest: outgoing-response.body failed");
        return false;
    }
    if (!wasi_http_types_method_outgoing_body_write(wasi_http_types_borrow_outgoing_body(ob->body),
                                                    &ob->stream)) {
        wasi_http_types_outgoing_body_drop_own(ob->body);
        wasi_http_types_outgoing_response_drop_own(resp);
        respond_error(out, "guest: outgoing-body.write failed");
        return false;
    }
    ob->stream_open = true;
    wasi_http_types_result_own_outgoing_response_error_code_t r;
    memset(&r, 0, sizeof(r));
    r.is_err = false;
    r.val.ok = resp;
    wasi_http_types_static_response_outparam_set(out, &r);
    return true;
}

bool start_response(own_response_outparam_t out, uint16_t status, hdrs_t *h, out_body_t *ob) {
    return start_response_opt(out, status, h, 0, ob);
}

bool start_response_opt(own_response_outparam_t out, uint16_t status, hdrs_t *h,
                        size_t optional_tail, out_body_t *ob) {
    own_fields_t fields;
    header_error_t herr;
    bool ok = hdrs_to_fields(h, &fields, &herr);
    if (!ok && optional_tail > 0 && optional_tail <= h->len) {
        hdrs_t required = {h->ptr, h->len - optional_tail, h->cap};
        ok = hdrs_to_fields(&required, &fields, &herr);
    }
    hdrs_free(h);
    if (!ok) {
        ob->stream_open = false;
        const char *name = header_error_name(herr);
        buf_t msg = {0};
        if (buf_append_str(&msg, "guest: response headers rejected: ") &&
            buf_append_str(&msg, name) && buf_append(&msg, "", 1)) {
            respond_error(out, (const char *)msg.ptr);
        } else {
            respond_error(out, "guest: response headers rejected");
        }
        buf_free(&msg);
        return false;
    }
    return start_response_fields(out, status, fields, ob);
}

static void close_stream(out_body_t *ob) {
    if (ob->stream_open) {
        wasi_io_streams_output_stream_drop_own(ob->stream);
        ob->stream_open = false;
    }
}

bool finish_body(out_body_t *ob, own_fields_t *trailers, const char **err_name) {
    bool ok = true;
    if (ob->stream_open) {
        /* A failed flush is reported, but finish is still attempted (its
         * error, if any, takes precedence). */
        const char *flush_err = NULL;
        if (!flush_wait(wasi_io_streams_borrow_output_stream(ob->stream), &flush_err)) {
            ok = false;
            if (err_name) {
                *err_name = flush_err;
            }
        }
    }
    close_stream(ob);
    error_code_t code;
    if (!wasi_http_types_static_outgoing_body_finish(ob->body, trailers, &code)) {
        if (err_name) {
            *err_name = error_code_name(&code);
        }
        wasi_http_types_error_code_free(&code);
        return false;
    }
    return ok;
}

void abort_body(out_body_t *ob) {
    close_stream(ob);
    wasi_http_types_outgoing_body_drop_own(ob->body);
}

void respond(own_response_outparam_t out, uint16_t status, hdrs_t *h, const void *body,
             size_t len) {
    out_body_t ob;
    if (!start_response(out, status, h, &ob)) {
        return;
    }
    if (!write_all(wasi_io_streams_borrow_output_stream(ob.stream), body, len, NULL)) {
        abort_body(&ob);
        return;
    }
    (void)finish_body(&ob, NULL, NULL);
}

void respond_text(own_response_outparam_t out, uint16_t status, const char *body) {
    hdrs_t h = {0};
    respond(out, status, &h, body, strlen(body));
}
