/* Shared helpers for the wasi-http-host WASI 0.3 test guests. See common.h. */
#include "common.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ strings --- */

service_string_t str_view(const char *s) {
    service_string_t r = {(uint8_t *)s, strlen(s)};
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

static size_t fmt_hex(char out[17], uint64_t v) {
    static const char DIGITS[] = "0123456789abcdef";
    char tmp[17];
    size_t n = 0;
    do {
        tmp[n++] = DIGITS[v & 0xf];
        v >>= 4;
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

bool hdrs_add_hex(hdrs_t *h, const char *name, uint64_t value) {
    char s[17];
    size_t n = fmt_hex(s, value);
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

void fields_entries(borrow_fields_t f, field_list_t *out) {
    out->ptr = NULL;
    out->len = 0;
    wasi_http_types_method_fields_copy_all(f, out);
}

void request_header_entries(borrow_request_t req, field_list_t *out) {
    own_fields_t headers = wasi_http_types_method_request_get_headers(req);
    fields_entries(wasi_http_types_borrow_fields(headers), out);
    wasi_http_types_fields_drop_own(headers);
}

const wasi_http_types_field_value_t *find_header(const field_list_t *entries, const char *name) {
    for (size_t i = 0; i < entries->len; i++) {
        if (str_ieq(entries->ptr[i].f0.ptr, entries->ptr[i].f0.len, name)) {
            return &entries->ptr[i].f1;
        }
    }
    return NULL;
}

bool header_u64(const field_list_t *entries, const char *name, bool *present, uint64_t *out) {
    const wasi_http_types_field_value_t *v = find_header(entries, name);
    *present = v != NULL;
    return !v || parse_u64(v->ptr, v->len, out);
}

char *request_path(borrow_request_t req) {
    service_string_t pq = {NULL, 0};
    size_t len = 0;
    bool has = wasi_http_types_method_request_get_path_with_query(req, &pq);
    if (has) {
        while (len < pq.len && pq.ptr[len] != '?') {
            len++;
        }
    }
    char *path = malloc(len + 1);
    if (!path) {
        __builtin_trap();
    }
    if (len) {
        memcpy(path, pq.ptr, len);
    }
    path[len] = 0;
    if (has) {
        service_string_free(&pq);
    }
    return path;
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

const char *header_error_name(const header_error_t *err) {
    switch (err->tag) {
    case WASI_HTTP_TYPES_HEADER_ERROR_INVALID_SYNTAX:
        return "invalid-syntax";
    case WASI_HTTP_TYPES_HEADER_ERROR_FORBIDDEN:
        return "forbidden";
    case WASI_HTTP_TYPES_HEADER_ERROR_IMMUTABLE:
        return "immutable";
    case WASI_HTTP_TYPES_HEADER_ERROR_SIZE_EXCEEDED:
        return "size-exceeded";
    case WASI_HTTP_TYPES_HEADER_ERROR_OTHER:
        return "other";
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

/* ------------------------------------------------------------- tasks ---- */

typedef struct {
    uint32_t waitable;
    bool subtask;
    task_fn fn;
    void *arg;
} wait_reg_t;

typedef struct ready {
    struct ready *next;
    task_fn fn;
    void *arg;
    uint32_t code;
} ready_t;

typedef struct alloc_hdr {
    struct alloc_hdr *next;
    /* Keeps the payload that follows maximally aligned. */
    _Alignas(max_align_t) unsigned char payload[];
} alloc_hdr_t;

struct task {
    service_waitable_set_t set;
    wait_reg_t *waits;
    size_t nwaits;
    size_t capwaits;
    ready_t *head;
    ready_t *tail;
    alloc_hdr_t *allocs;
    bool returned;
};

static uint32_t in_flight = 0;

uint32_t tasks_in_flight(void) {
    return in_flight;
}

uint64_t instance_id(void) {
    static uint64_t id = 0;
    while (id == 0) {
        id = wasi_random_random_get_random_u64();
    }
    return id;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        __builtin_trap();
    }
    return p;
}

void *task_alloc(task_t *t, size_t size) {
    alloc_hdr_t *a = xmalloc(sizeof(alloc_hdr_t) + size);
    memset(a->payload, 0, size);
    a->next = t->allocs;
    t->allocs = a;
    return a->payload;
}

void task_later(task_t *t, task_fn fn, void *arg, uint32_t code) {
    ready_t *r = xmalloc(sizeof(*r));
    r->next = NULL;
    r->fn = fn;
    r->arg = arg;
    r->code = code;
    if (t->tail) {
        t->tail->next = r;
    } else {
        t->head = r;
    }
    t->tail = r;
}

static void add_wait(task_t *t, uint32_t waitable, bool subtask, task_fn fn, void *arg) {
    if (t->nwaits == t->capwaits) {
        size_t cap = t->capwaits ? t->capwaits * 2 : 8;
        wait_reg_t *p = realloc(t->waits, cap * sizeof(*p));
        if (!p) {
            __builtin_trap();
        }
        t->waits = p;
        t->capwaits = cap;
    }
    wait_reg_t *w = &t->waits[t->nwaits++];
    w->waitable = waitable;
    w->subtask = subtask;
    w->fn = fn;
    w->arg = arg;
    service_waitable_join(waitable, t->set);
}

void task_wait(task_t *t, uint32_t waitable, task_fn fn, void *arg) {
    add_wait(t, waitable, false, fn, arg);
}

void task_on_status(task_t *t, uint32_t waitable, uint32_t status, task_fn fn, void *arg) {
    if (status == SERVICE_WAITABLE_STATUS_BLOCKED) {
        task_wait(t, waitable, fn, arg);
    } else {
        task_later(t, fn, arg, status);
    }
}

void task_on_subtask(task_t *t, service_subtask_status_t status, task_fn fn, void *arg) {
    service_subtask_state_t state = SERVICE_SUBTASK_STATE(status);
    service_subtask_t handle = SERVICE_SUBTASK_HANDLE(status);
    if (state == SERVICE_SUBTASK_RETURNED) {
        if (handle) {
            service_subtask_drop(handle);
        }
        task_later(t, fn, arg, SERVICE_SUBTASK_RETURNED);
        return;
    }
    add_wait(t, handle, true, fn, arg);
}

typedef struct {
    task_fn fn;
    void *arg;
} sleep_t;

static void sleep_done(task_t *t, void *arg, uint32_t code) {
    sleep_t *s = arg;
    s->fn(t, s->arg, code);
}

void task_sleep_ms(task_t *t, uint64_t ms, task_fn fn, void *arg) {
    uint64_t ns = ms > UINT64_MAX / 1000000u ? UINT64_MAX : ms * 1000000u;
    sleep_t *s = task_alloc(t, sizeof(*s));
    s->fn = fn;
    s->arg = arg;
    task_on_subtask(t, wasi_clocks_monotonic_clock_wait_for(ns), sleep_done, s);
}

bool task_returned(const task_t *t) {
    return t->returned;
}

void task_return_response(task_t *t, own_response_t response) {
    exports_wasi_http_handler_result_own_response_error_code_t r;
    memset(&r, 0, sizeof(r));
    r.is_err = false;
    r.val.ok = response;
    t->returned = true;
    exports_wasi_http_handler_handle_return(r);
}

void task_return_error(task_t *t, const error_code_t *code) {
    exports_wasi_http_handler_result_own_response_error_code_t r;
    memset(&r, 0, sizeof(r));
    r.is_err = true;
    r.val.err = *code;
    t->returned = true;
    exports_wasi_http_handler_handle_return(r);
}

void task_return_internal(task_t *t, const char *msg) {
    error_code_t code;
    memset(&code, 0, sizeof(code));
    code.tag = WASI_HTTP_TYPES_ERROR_CODE_INTERNAL_ERROR;
    code.val.internal_error.is_some = true;
    code.val.internal_error.val = str_view(msg);
    task_return_error(t, &code);
}

static void task_end(task_t *t) {
    service_waitable_set_drop(t->set);
    while (t->allocs) {
        alloc_hdr_t *next = t->allocs->next;
        free(t->allocs);
        t->allocs = next;
    }
    free(t->waits);
    free(t);
    in_flight--;
    service_context_set_0(NULL);
}

/* Runs the ready queue, then tells the runtime what to do next. */
static service_callback_code_t task_run(task_t *t) {
    for (;;) {
        while (t->head) {
            ready_t *r = t->head;
            t->head = r->next;
            if (!t->head) {
                t->tail = NULL;
            }
            task_fn fn = r->fn;
            void *arg = r->arg;
            uint32_t code = r->code;
            free(r);
            fn(t, arg, code);
        }
        if (t->nwaits > 0) {
            return SERVICE_CALLBACK_CODE_WAIT(t->set);
        }
        if (t->returned) {
            break;
        }
        /* A guest bug: nothing left to wait for and no result given. */
        task_return_internal(t, "guest: handle finished without a response");
    }
    task_end(t);
    return SERVICE_CALLBACK_CODE_EXIT;
}

service_callback_code_t exports_wasi_http_handler_handle(own_request_t request) {
    task_t *t = xmalloc(sizeof(*t));
    memset(t, 0, sizeof(*t));
    t->set = service_waitable_set_new();
    in_flight++;
    service_context_set_0(t);
    guest_handle(t, request);
    return task_run(t);
}

service_callback_code_t exports_wasi_http_handler_handle_callback(service_event_t *event) {
    task_t *t = service_context_get_0();
    switch (event->event) {
    case SERVICE_EVENT_SUBTASK:
    case SERVICE_EVENT_STREAM_READ:
    case SERVICE_EVENT_STREAM_WRITE:
    case SERVICE_EVENT_FUTURE_READ:
    case SERVICE_EVENT_FUTURE_WRITE: {
        bool subtask = event->event == SERVICE_EVENT_SUBTASK;
        for (size_t i = 0; i < t->nwaits; i++) {
            wait_reg_t w = t->waits[i];
            if (w.waitable != event->waitable || w.subtask != subtask) {
                continue;
            }
            if (subtask && event->code != SERVICE_SUBTASK_RETURNED) {
                break; /* started: keep waiting */
            }
            t->waits[i] = t->waits[--t->nwaits];
            if (subtask) {
                service_subtask_drop(w.waitable);
            } else {
                service_waitable_join(w.waitable, 0);
            }
            w.fn(t, w.arg, event->code);
            break;
        }
        break;
    }
    default:
        /* EVENT_NONE / EVENT_CANCEL: nothing of ours. */
        break;
    }
    return task_run(t);
}

/* ----------------------------------------------------- stream/futures --- */

static void write_issue(task_t *t, write_op_t *op);

static void write_step(task_t *t, void *arg, uint32_t status) {
    write_op_t *op = arg;
    size_t n = SERVICE_WAITABLE_COUNT(status);
    if (n > op->left) {
        n = op->left;
    }
    op->p += n;
    op->left -= n;
    if (SERVICE_WAITABLE_STATE(status) != SERVICE_WAITABLE_COMPLETED) {
        op->done(t, op->arg, false);
    } else if (op->left == 0) {
        op->done(t, op->arg, true);
    } else {
        write_issue(t, op);
    }
}

static void write_issue(task_t *t, write_op_t *op) {
    size_t n = op->left < CHUNK_SIZE ? op->left : CHUNK_SIZE;
    uint32_t status = op->write(op->writer, op->p, n);
    task_on_status(t, op->writer, status, write_step, op);
}

void write_all_with(task_t *t, write_op_t *op, stream_write_fn write, uint32_t w,
                    const void *data, size_t len, done_fn done, void *arg) {
    op->writer = w;
    op->write = write;
    op->p = data;
    op->left = len;
    op->done = done;
    op->arg = arg;
    if (len == 0) {
        task_later(t, write_step, op, SERVICE_WAITABLE_COMPLETED);
        return;
    }
    write_issue(t, op);
}

void write_all(task_t *t, write_op_t *op, stream_writer_t w, const void *data, size_t len,
               done_fn done, void *arg) {
    write_all_with(t, op, wasi_http_types_stream_u8_write, w, data, len, done, arg);
}

static void read_issue(task_t *t, read_op_t *op);

static void read_step(task_t *t, void *arg, uint32_t status) {
    read_op_t *op = arg;
    size_t n = SERVICE_WAITABLE_COUNT(status);
    bool ended = SERVICE_WAITABLE_STATE(status) != SERVICE_WAITABLE_COMPLETED;
    if (n == 0 && !ended) {
        read_issue(t, op); /* an empty read: ask again */
        return;
    }
    op->done(t, op->arg, n, ended);
}

static void read_issue(task_t *t, read_op_t *op) {
    uint32_t status = wasi_http_types_stream_u8_read(op->reader, op->buf, op->cap);
    task_on_status(t, op->reader, status, read_step, op);
}

void read_some(task_t *t, read_op_t *op, stream_reader_t r, uint8_t *buf, size_t cap,
               read_fn done, void *arg) {
    op->reader = r;
    op->buf = buf;
    op->cap = cap;
    op->done = done;
    op->arg = arg;
    read_issue(t, op);
}

typedef struct {
    uint32_t reader;
    bool trailers; /* else a status future */
    done_fn done;
    void *arg;
} fread_op_t;

static void fread_step(task_t *t, void *arg, uint32_t status) {
    fread_op_t *op = arg;
    if (op->trailers) {
        wasi_http_types_future_result_option_own_trailers_error_code_drop_readable(op->reader);
    } else {
        wasi_http_types_future_result_void_error_code_drop_readable(op->reader);
    }
    op->done(t, op->arg, SERVICE_WAITABLE_STATE(status) == SERVICE_WAITABLE_COMPLETED);
}

void read_trailers(task_t *t, trailers_reader_t r, trailers_result_t *out, done_fn done,
                   void *arg) {
    fread_op_t *op = task_alloc(t, sizeof(*op));
    op->reader = r;
    op->trailers = true;
    op->done = done;
    op->arg = arg;
    memset(out, 0, sizeof(*out));
    uint32_t status = wasi_http_types_future_result_option_own_trailers_error_code_read(r, out);
    task_on_status(t, r, status, fread_step, op);
}

void read_status(task_t *t, status_reader_t r, status_result_t *out, done_fn done, void *arg) {
    fread_op_t *op = task_alloc(t, sizeof(*op));
    op->reader = r;
    op->trailers = false;
    op->done = done;
    op->arg = arg;
    memset(out, 0, sizeof(*out));
    uint32_t status = wasi_http_types_future_result_void_error_code_read(r, out);
    task_on_status(t, r, status, fread_step, op);
}

typedef struct {
    uint32_t writer;
    trailers_result_t value;
} twrite_op_t;

static void twrite_step(task_t *t, void *arg, uint32_t status) {
    (void)t;
    twrite_op_t *op = arg;
    bool delivered = SERVICE_WAITABLE_STATE(status) == SERVICE_WAITABLE_COMPLETED;
    wasi_http_types_future_result_option_own_trailers_error_code_drop_writable(op->writer);
    if (op->value.is_err) {
        wasi_http_types_error_code_free(&op->value.val.err);
    } else if (!delivered && op->value.val.ok.is_some) {
        wasi_http_types_fields_drop_own(op->value.val.ok.val);
    }
}

void write_trailers(task_t *t, trailers_writer_t w, trailers_result_t value) {
    twrite_op_t *op = task_alloc(t, sizeof(*op));
    op->writer = w;
    op->value = value;
    uint32_t status =
        wasi_http_types_future_result_option_own_trailers_error_code_write(w, &op->value);
    task_on_status(t, w, status, twrite_step, op);
}

void write_trailers_none(task_t *t, trailers_writer_t w) {
    trailers_result_t v;
    memset(&v, 0, sizeof(v));
    write_trailers(t, w, v);
}

void write_trailers_internal_error(task_t *t, trailers_writer_t w) {
    trailers_result_t v;
    memset(&v, 0, sizeof(v));
    v.is_err = true;
    v.val.err.tag = WASI_HTTP_TYPES_ERROR_CODE_INTERNAL_ERROR;
    write_trailers(t, w, v);
}

typedef struct {
    uint32_t writer;
    status_result_t value;
} swrite_op_t;

static void swrite_step(task_t *t, void *arg, uint32_t status) {
    (void)t;
    (void)status;
    swrite_op_t *op = arg;
    wasi_http_types_future_result_void_error_code_drop_writable(op->writer);
}

void write_status_ok(task_t *t, status_writer_t w) {
    swrite_op_t *op = task_alloc(t, sizeof(*op));
    op->writer = w;
    uint32_t status = wasi_http_types_future_result_void_error_code_write(w, &op->value);
    task_on_status(t, w, status, swrite_step, op);
}

/* ------------------------------------------------------------ bodies ---- */

void consume_request(task_t *t, own_request_t request, body_in_t *in) {
    status_writer_t res_w;
    status_reader_t res = wasi_http_types_future_result_void_error_code_new(&res_w);
    wasi_http_types_tuple2_stream_u8_future_result_option_own_trailers_error_code_t ret;
    wasi_http_types_static_request_consume_body(request, res, &ret);
    in->body = ret.f0;
    in->trailers = ret.f1;
    write_status_ok(t, res_w);
}

void consume_response(task_t *t, own_response_t response, body_in_t *in) {
    status_writer_t res_w;
    status_reader_t res = wasi_http_types_future_result_void_error_code_new(&res_w);
    wasi_http_types_tuple2_stream_u8_future_result_option_own_trailers_error_code_t ret;
    wasi_http_types_static_response_consume_body(response, res, &ret);
    in->body = ret.f0;
    in->trailers = ret.f1;
    write_status_ok(t, res_w);
}

void body_in_drop(body_in_t *in) {
    wasi_http_types_stream_u8_drop_readable(in->body);
    wasi_http_types_future_result_option_own_trailers_error_code_drop_readable(in->trailers);
}

bool respond_stream(task_t *t, uint16_t status, hdrs_t *h, size_t optional_tail, body_out_t *out) {
    own_fields_t fields;
    header_error_t herr;
    bool ok = hdrs_to_fields(h, &fields, &herr);
    if (!ok && optional_tail > 0 && optional_tail <= h->len) {
        wasi_http_types_header_error_free(&herr);
        hdrs_t required = {h->ptr, h->len - optional_tail, h->cap};
        ok = hdrs_to_fields(&required, &fields, &herr);
    }
    hdrs_free(h);
    if (!ok) {
        buf_t msg = {0};
        if (buf_append_str(&msg, "guest: response headers rejected: ") &&
            buf_append_str(&msg, header_error_name(&herr)) && buf_append(&msg, "", 1)) {
            task_return_internal(t, (const char *)msg.ptr);
        } else {
            task_return_internal(t, "guest: response headers rejected");
        }
        buf_free(&msg);
        wasi_http_types_header_error_free(&herr);
        return false;
    }

    stream_reader_t body = wasi_http_types_stream_u8_new(&out->body);
    trailers_reader_t trailers =
        wasi_http_types_future_result_option_own_trailers_error_code_new(&out->trailers);
    wasi_http_types_tuple2_own_response_future_result_void_error_code_t ret;
    wasi_http_types_static_response_new(fields, &body, trailers, &ret);
    wasi_http_types_future_result_void_error_code_drop_readable(ret.f1);
    if (!wasi_http_types_method_response_set_status_code(wasi_http_types_borrow_response(ret.f0),
                                                         status)) {
        wasi_http_types_response_drop_own(ret.f0);
        /* The readers went with the response: these just finish our ends. */
        body_out_end_ok(t, out);
        task_return_internal(t, "guest: set-status-code failed");
        return false;
    }
    task_return_response(t, ret.f0);
    return true;
}

void body_out_end(task_t *t, body_out_t *out, trailers_result_t trailers) {
    wasi_http_types_stream_u8_drop_writable(out->body);
    write_trailers(t, out->trailers, trailers);
}

void body_out_end_ok(task_t *t, body_out_t *out) {
    trailers_result_t v;
    memset(&v, 0, sizeof(v));
    body_out_end(t, out, v);
}

typedef struct {
    body_out_t out;
    write_op_t wr;
    size_t len;
    _Alignas(max_align_t) uint8_t data[];
} full_t;

static void full_written(task_t *t, void *arg, bool ok) {
    full_t *f = arg;
    if (ok) {
        body_out_end_ok(t, &f->out);
    } else {
        wasi_http_types_stream_u8_drop_writable(f->out.body);
        write_trailers_internal_error(t, f->out.trailers);
    }
}

void respond(task_t *t, uint16_t status, hdrs_t *h, const void *body, size_t len) {
    full_t *f = task_alloc(t, sizeof(full_t) + len);
    if (len) {
        memcpy(f->data, body, len);
    }
    f->len = len;
    if (!respond_stream(t, status, h, 0, &f->out)) {
        return;
    }
    write_all(t, &f->wr, f->out.body, f->data, len, full_written, f);
}

void respond_text(task_t *t, uint16_t status, const char *body) {
    hdrs_t h = {0};
    respond(t, status, &h, body, strlen(body));
}

typedef struct {
    body_in_t in;
    body_out_t out;
    read_op_t rd;
    write_op_t wr;
    bool ended;
    transform_fn transform;
    trailers_result_t trailers;
    uint8_t buf[CHUNK_SIZE];
} pipe_t;

static void pipe_read_done(task_t *t, void *arg, size_t n, bool ended);

static void pipe_trailers_done(task_t *t, void *arg, bool ok) {
    pipe_t *p = arg;
    wasi_http_types_stream_u8_drop_writable(p->out.body);
    if (ok) {
        write_trailers(t, p->out.trailers, p->trailers);
    } else {
        write_trailers_internal_error(t, p->out.trailers);
    }
}

static void pipe_written(task_t *t, void *arg, bool ok) {
    pipe_t *p = arg;
    if (!ok) {
        /* The response body's reader went away: give up on both sides. */
        body_in_drop(&p->in);
        wasi_http_types_stream_u8_drop_writable(p->out.body);
        write_trailers_internal_error(t, p->out.trailers);
        return;
    }
    if (p->ended) {
        wasi_http_types_stream_u8_drop_readable(p->in.body);
        read_trailers(t, p->in.trailers, &p->trailers, pipe_trailers_done, p);
        return;
    }
    read_some(t, &p->rd, p->in.body, p->buf, sizeof(p->buf), pipe_read_done, p);
}

static void pipe_read_done(task_t *t, void *arg, size_t n, bool ended) {
    pipe_t *p = arg;
    p->ended = ended;
    if (p->transform) {
        p->transform(p->buf, n);
    }
    write_all(t, &p->wr, p->out.body, p->buf, n, pipe_written, p);
}

void pipe_body(task_t *t, body_in_t in, body_out_t out) {
    pipe_body_with(t, in, out, NULL);
}

void pipe_body_with(task_t *t, body_in_t in, body_out_t out, transform_fn transform) {
    pipe_t *p = task_alloc(t, sizeof(*p));
    p->in = in;
    p->out = out;
    p->transform = transform;
    read_some(t, &p->rd, p->in.body, p->buf, sizeof(p->buf), pipe_read_done, p);
}

typedef struct {
    wasi_cli_stdout_stream_u8_writer_t writer;
    wasi_cli_stdout_future_result_void_error_code_t result;
    wasi_cli_stdout_result_void_error_code_t value;
    write_op_t wr;
    done_fn done;
    void *arg;
    bool write_ok;
    _Alignas(max_align_t) char text[];
} print_t;

static uint32_t stdout_write(uint32_t w, const uint8_t *buf, size_t len) {
    return wasi_cli_stdout_stream_u8_write(w, buf, len);
}

static void print_result(task_t *t, void *arg, uint32_t status) {
    print_t *p = arg;
    bool ok = p->write_ok && SERVICE_WAITABLE_STATE(status) == SERVICE_WAITABLE_COMPLETED &&
              !p->value.is_err;
    wasi_cli_stdout_future_result_void_error_code_drop_readable(p->result);
    p->done(t, p->arg, ok);
}

static void print_written(task_t *t, void *arg, bool ok) {
    print_t *p = arg;
    p->write_ok = ok;
    /* Dropping the writer ends the stream: the result future then resolves. */
    wasi_cli_stdout_stream_u8_drop_writable(p->writer);
    uint32_t status = wasi_cli_stdout_future_result_void_error_code_read(p->result, &p->value);
    task_on_status(t, p->result, status, print_result, p);
}

void print_stdout(task_t *t, const char *text, done_fn done, void *arg) {
    size_t len = strlen(text);
    print_t *p = task_alloc(t, sizeof(print_t) + len + 1);
    memcpy(p->text, text, len + 1);
    p->done = done;
    p->arg = arg;
    wasi_cli_stdout_stream_u8_t reader = wasi_cli_stdout_stream_u8_new(&p->writer);
    p->result = wasi_cli_stdout_write_via_stream(reader);
    write_all_with(t, &p->wr, stdout_write, p->writer, p->text, len, print_written, p);
}
