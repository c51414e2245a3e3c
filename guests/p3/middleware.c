/*
 * p3-mw-header, p3-mw-reject, p3-mw-upper (WASI 0.3 middleware): components of
 * the `wasi:http/middleware` world, which import `wasi:http/handler` (the next
 * handler in a chain) and export it. One source, built three times with
 * -DMW_HEADER, -DMW_REJECT or -DMW_UPPER.
 *
 * p3-mw-header: hands on a new request with the incoming one's method, path,
 *   scheme, authority and headers plus `x-mw-header: added`, whose body and
 *   trailers are the incoming ones (passed on, never read here); answers with
 *   the next handler's status, headers plus `x-mw-header-seen: 1`, and body
 *   and trailers (passed on).
 * p3-mw-reject: without `authorization: Bearer let-me-in`, answers 401
 *   "denied by p3-mw-reject\n" itself and never calls the next handler;
 *   otherwise hands the request on as it is and answers with the next
 *   handler's response as it is.
 * p3-mw-upper: hands the request on as it is; answers with the next handler's
 *   status and headers, and its body streamed through with ASCII letters
 *   upper-cased, chunk by chunk as it arrives; its trailers after it.
 *
 * All three: when the next handler fails with an error-code, answer with that
 * error-code (the host turns it into a status).
 */
#include "common.h"

#include <stdlib.h>
#include <string.h>

#if !defined(MW_HEADER) && !defined(MW_REJECT) && !defined(MW_UPPER)
#error "build with -DMW_HEADER, -DMW_REJECT or -DMW_UPPER"
#endif

typedef wasi_http_handler_result_own_response_error_code_t handled_t;

typedef struct {
    own_request_t request;
    handled_t result;
} mw_t;

/* The next handler's error-code becomes ours. */
static bool answered_with_error(task_t *t, mw_t *m) {
    if (!m->result.is_err) {
        return false;
    }
    task_return_error(t, &m->result.val.err);
    wasi_http_types_error_code_free(&m->result.val.err);
    return true;
}

/* The next handler's response (or, with false, the task answered already:
 * its error-code, or internal-error), its status, and its header entries plus
 * `extra` (NULL for none) in `h`. */
__attribute__((unused)) static bool next_response(task_t *t, mw_t *m, const char *extra_name,
                                                  const char *extra_value, own_response_t *resp,
                                                  uint16_t *status, hdrs_t *h) {
    if (answered_with_error(t, m)) {
        return false;
    }
    *resp = m->result.val.ok;
    borrow_response_t rb = wasi_http_types_borrow_response(*resp);
    *status = wasi_http_types_method_response_get_status_code(rb);
    field_list_t entries;
    own_fields_t f = wasi_http_types_method_response_get_headers(rb);
    fields_entries(wasi_http_types_borrow_fields(f), &entries);
    wasi_http_types_fields_drop_own(f);
    bool ok = true;
    for (size_t i = 0; ok && i < entries.len; i++) {
        const field_entry_t *e = &entries.ptr[i];
        ok = hdrs_add(h, NULL, e->f0.ptr, e->f0.len, e->f1.ptr, e->f1.len);
    }
    wasi_http_types_list_tuple2_field_name_field_value_free(&entries);
    if (ok && extra_name) {
        ok = hdrs_add_str(h, extra_name, extra_value);
    }
    if (!ok) {
        hdrs_free(h);
        wasi_http_types_response_drop_own(*resp);
        task_return_internal(t, "guest: out of memory");
    }
    return ok;
}

#if defined(MW_HEADER)

/* A request like `incoming`, with one more header; the incoming body and
 * trailers become its own. */
static const char *rebuild_request(task_t *t, own_request_t incoming, own_request_t *out) {
    borrow_request_t ib = wasi_http_types_borrow_request(incoming);
    field_list_t entries;
    request_header_entries(ib, &entries);
    /* Appended one by one: the headers the host manages itself (`host`, say)
     * are refused as forbidden, and left out. */
    own_fields_t fields = wasi_http_types_constructor_fields();
    borrow_fields_t fb = wasi_http_types_borrow_fields(fields);
    bool ok = true;
    for (size_t i = 0; ok && i < entries.len; i++) {
        header_error_t herr;
        if (!wasi_http_types_method_fields_append(fb, &entries.ptr[i].f0, &entries.ptr[i].f1,
                                                  &herr)) {
            ok = herr.tag == WASI_HTTP_TYPES_HEADER_ERROR_FORBIDDEN;
            wasi_http_types_header_error_free(&herr);
        }
    }
    wasi_http_types_list_tuple2_field_name_field_value_free(&entries);
    wasi_http_types_field_name_t name = str_view("x-mw-header");
    wasi_http_types_field_value_t value = {(uint8_t *)"added", 5};
    header_error_t herr;
    if (ok && !wasi_http_types_method_fields_append(fb, &name, &value, &herr)) {
        wasi_http_types_header_error_free(&herr);
        ok = false;
    }
    if (!ok) {
        wasi_http_types_fields_drop_own(fields);
        wasi_http_types_request_drop_own(incoming);
        return "guest: request headers rejected";
    }

    wasi_http_types_method_t method;
    wasi_http_types_method_request_get_method(ib, &method);
    service_string_t path;
    bool has_path = wasi_http_types_method_request_get_path_with_query(ib, &path);
    wasi_http_types_scheme_t scheme;
    bool has_scheme = wasi_http_types_method_request_get_scheme(ib, &scheme);
    service_string_t authority;
    bool has_authority = wasi_http_types_method_request_get_authority(ib, &authority);

    body_in_t in;
    consume_request(t, incoming, &in);
    wasi_http_types_tuple2_own_request_future_result_void_error_code_t ret;
    wasi_http_types_static_request_new(fields, &in.body, in.trailers, NULL, &ret);
    wasi_http_types_future_result_void_error_code_drop_readable(ret.f1);
    borrow_request_t rb = wasi_http_types_borrow_request(ret.f0);
    const char *failed = NULL;
    if (!wasi_http_types_method_request_set_method(rb, &method)) {
        failed = "guest: set-method failed";
    } else if (!wasi_http_types_method_request_set_path_with_query(rb, has_path ? &path : NULL)) {
        failed = "guest: set-path-with-query failed";
    } else if (!wasi_http_types_method_request_set_scheme(rb, has_scheme ? &scheme : NULL)) {
        failed = "guest: set-scheme failed";
    } else if (!wasi_http_types_method_request_set_authority(rb,
                                                             has_authority ? &authority : NULL)) {
        failed = "guest: set-authority failed";
    }
    wasi_http_types_method_free(&method);
    if (has_path) {
        service_string_free(&path);
    }
    if (has_scheme) {
        wasi_http_types_scheme_free(&scheme);
    }
    if (has_authority) {
        service_string_free(&authority);
    }
    if (failed) {
        wasi_http_types_request_drop_own(ret.f0);
        return failed;
    }
    *out = ret.f0;
    return NULL;
}

/* The next handler's response, with one more header; its body and trailers
 * passed on. */
static void handled(task_t *t, void *arg, uint32_t code) {
    own_response_t resp;
    uint16_t status;
    hdrs_t h = {0};
    if (!next_response(t, arg, "x-mw-header-seen", "1", &resp, &status, &h)) {
        return;
    }
    own_fields_t fields;
    header_error_t herr;
    bool ok = hdrs_to_fields(&h, &fields, &herr);
    hdrs_free(&h);
    if (!ok) {
        wasi_http_types_header_error_free(&herr);
        wasi_http_types_response_drop_own(resp);
        task_return_internal(t, "guest: response headers rejected");
        return;
    }
    body_in_t in;
    consume_response(t, resp, &in);
    wasi_http_types_tuple2_own_response_future_result_void_error_code_t ret;
    wasi_http_types_static_response_new(fields, &in.body, in.trailers, &ret);
    wasi_http_types_future_result_void_error_code_drop_readable(ret.f1);
    if (!wasi_http_types_method_response_set_status_code(wasi_http_types_borrow_response(ret.f0),
                                                         status)) {
        wasi_http_types_response_drop_own(ret.f0);
        task_return_internal(t, "guest: set-status-code failed");
        return;
    }
    task_return_response(t, ret.f0);
}

void guest_handle(task_t *t, own_request_t request) {
    mw_t *m = task_alloc(t, sizeof(*m));
    const char *failed = rebuild_request(t, request, &m->request);
    if (failed) {
        task_return_internal(t, failed);
        return;
    }
    task_on_subtask(t, wasi_http_handler_handle(m->request, &m->result), handled, m);
}

#elif defined(MW_REJECT)

static void handled(task_t *t, void *arg, uint32_t code) {
    mw_t *m = arg;
    if (answered_with_error(t, m)) {
        return;
    }
    task_return_response(t, m->result.val.ok);
}

void guest_handle(task_t *t, own_request_t request) {
    field_list_t entries;
    request_header_entries(wasi_http_types_borrow_request(request), &entries);
    const wasi_http_types_field_value_t *auth = find_header(&entries, "authorization");
    bool allowed = auth && str_eq(auth->ptr, auth->len, "Bearer let-me-in");
    wasi_http_types_list_tuple2_field_name_field_value_free(&entries);
    if (!allowed) {
        wasi_http_types_request_drop_own(request);
        respond_text(t, 401, "denied by p3-mw-reject\n");
        return;
    }
    mw_t *m = task_alloc(t, sizeof(*m));
    m->request = request;
    task_on_subtask(t, wasi_http_handler_handle(m->request, &m->result), handled, m);
}

#else /* MW_UPPER */

static void upper(uint8_t *chunk, size_t len) {
    for (size_t i = 0; i < len; i++) {
        if (chunk[i] >= 'a' && chunk[i] <= 'z') {
            chunk[i] = (uint8_t)(chunk[i] - 'a' + 'A');
        }
    }
}

static void handled(task_t *t, void *arg, uint32_t code) {
    own_response_t resp;
    uint16_t status;
    hdrs_t h = {0};
    if (!next_response(t, arg, NULL, NULL, &resp, &status, &h)) {
        return;
    }
    body_out_t out;
    if (!respond_stream(t, status, &h, 0, &out)) {
        wasi_http_types_response_drop_own(resp);
        return;
    }
    body_in_t in;
    consume_response(t, resp, &in);
    pipe_body_with(t, in, out, upper);
}

void guest_handle(task_t *t, own_request_t request) {
    mw_t *m = task_alloc(t, sizeof(*m));
    m->request = request;
    task_on_subtask(t, wasi_http_handler_handle(m->request, &m->result), handled, m);
}

#endif
