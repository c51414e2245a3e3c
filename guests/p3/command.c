/*
 * command-p3 (WASI 0.3): a `wasi:cli/command` test guest for `wasi-http run`.
 *
 * Exports `wasi:cli/run@0.3.0` (`run: async func() -> result`) through the
 * wit-bindgen C async bindings (callback ABI) and is componentized without
 * an adapter: no libc function that needs a WASI import (no libc stdio).
 * Imports wasi:cli/environment, stdout, stderr and exit @0.3.0 and
 * wasi:http/client@0.3.0 (+ wasi:http/types). Output goes through
 * `write-via-stream` streams, one per stdout/stderr, ended (and their result
 * futures awaited) before the command finishes.
 *
 * Contract, by argv (argv[0] is the component path; the same for command-p2):
 *
 *   (no arguments)   stdout: the line "hello from a WASI 0.3 command", then
 *                    each argument on a line of its own (that is argv[0],
 *                    the path), then a line KEY=VALUE for each environment
 *                    variable whose name starts with CMD_ (host order);
 *                    `run` returns ok (exit 0)
 *   exit CODE        exit with CODE (decimal 0-255) via wasi:cli/exit
 *                    exit-with-code, printing nothing
 *   fetch URL        GET URL (http://authority[/path][?query]; a #fragment
 *                    is dropped, an empty path is "/") with wasi:http/client
 *                    send; stdout: the line "status NNN", then the response
 *                    body as received; `run` returns ok (exit 0) if the
 *                    status is 200, else err (exit 1). An error-code (from
 *                    send or the response body's trailers future): stderr
 *                    "error <error-code WIT case name>" (e.g. "error
 *                    connection-refused"), exit-with-code 2; a trailers
 *                    future dropped without a value is reported as "error
 *                    HTTP-response-incomplete" (exit 2)
 *   trap             trap (__builtin_trap)
 *   anything else    (unknown command, wrong argument count, bad CODE, a URL
 *                    that is not http://authority...): a "usage: ..." line
 *                    on stderr, exit-with-code 64
 *
 * Concurrency: the one `run` task is driven by a small continuation loop (the
 * same idea as guests/p3/common.c, which is tied to the wasi:http/service
 * bindings): asynchronous operations register a continuation for their
 * waitable, and continuations run from the loop, never re-entrantly. The
 * task exits once it has returned and nothing is pending.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"

#define CHUNK_SIZE ((size_t)65536)
#define EXIT_USAGE 64
#define EXIT_ERROR_CODE 2

typedef wasi_http_types_error_code_t error_code_t;

/* ------------------------------------------------------------ helpers --- */

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        __builtin_trap();
    }
    return p;
}

static bool str_eq(const command_string_t *s, const char *lit) {
    size_t n = strlen(lit);
    return s->len == n && (n == 0 || memcmp(s->ptr, lit, n) == 0);
}

/* A growable byte buffer; traps when out of memory. */
typedef struct {
    uint8_t *ptr;
    size_t len;
    size_t cap;
} buf_t;

static void buf_append(buf_t *b, const void *data, size_t len) {
    if (len == 0) {
        return;
    }
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + len) {
            cap *= 2;
        }
        uint8_t *p = realloc(b->ptr, cap);
        if (!p) {
            __builtin_trap();
        }
        b->ptr = p;
        b->cap = cap;
    }
    memcpy(b->ptr + b->len, data, len);
    b->len += len;
}

static void buf_append_str(buf_t *b, const char *s) {
    buf_append(b, s, strlen(s));
}

static void buf_append_u64(buf_t *b, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + (v % 10));
        v /= 10;
    } while (v);
    while (n > 0) {
        buf_append(b, &tmp[--n], 1);
    }
}

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

static const char *error_code_name(const error_code_t *code) {
    size_t n = sizeof(ERROR_CODE_NAMES) / sizeof(ERROR_CODE_NAMES[0]);
    if (code->tag < n && ERROR_CODE_NAMES[code->tag]) {
        return ERROR_CODE_NAMES[code->tag];
    }
    return "unknown-error-code";
}

/* --------------------------------------------------------------- loop --- */

/* A continuation: `code` is the event code (a waitable status for stream and
 * future operations, a subtask state for subtasks). */
typedef void (*cont_fn)(void *arg, uint32_t code);
/* A completion: `ok` as the operation defines it. */
typedef void (*done_fn)(void *arg, bool ok);

#define MAX_WAITS 16

typedef struct ready {
    struct ready *next;
    cont_fn fn;
    void *arg;
    uint32_t code;
} ready_t;

static struct {
    command_waitable_set_t set;
    struct {
        uint32_t waitable;
        bool subtask;
        cont_fn fn;
        void *arg;
    } waits[MAX_WAITS];
    size_t nwaits;
    ready_t *head;
    ready_t *tail;
    bool returned;
} loop;

/* Runs `fn(arg, code)` from the loop, soon. */
static void later(cont_fn fn, void *arg, uint32_t code) {
    ready_t *r = xmalloc(sizeof(*r));
    r->next = NULL;
    r->fn = fn;
    r->arg = arg;
    r->code = code;
    if (loop.tail) {
        loop.tail->next = r;
    } else {
        loop.head = r;
    }
    loop.tail = r;
}

static void add_wait(uint32_t waitable, bool subtask, cont_fn fn, void *arg) {
    if (loop.nwaits == MAX_WAITS) {
        __builtin_trap();
    }
    loop.waits[loop.nwaits].waitable = waitable;
    loop.waits[loop.nwaits].subtask = subtask;
    loop.waits[loop.nwaits].fn = fn;
    loop.waits[loop.nwaits].arg = arg;
    loop.nwaits++;
    command_waitable_join(waitable, loop.set);
}

/* For a stream/future operation's return value: BLOCKED waits for the
 * event, anything else runs `fn` with that status soon. */
static void on_status(uint32_t waitable, uint32_t status, cont_fn fn, void *arg) {
    if (status == COMMAND_WAITABLE_STATUS_BLOCKED) {
        add_wait(waitable, false, fn, arg);
    } else {
        later(fn, arg, status);
    }
}

/* For an async import's return value: runs `fn` (code RETURNED) once the
 * subtask returned, dropping the subtask. */
static void on_subtask(command_subtask_status_t status, cont_fn fn, void *arg) {
    command_subtask_t handle = COMMAND_SUBTASK_HANDLE(status);
    if (COMMAND_SUBTASK_STATE(status) == COMMAND_SUBTASK_RETURNED) {
        if (handle) {
            command_subtask_drop(handle);
        }
        later(fn, arg, COMMAND_SUBTASK_RETURNED);
        return;
    }
    add_wait(handle, true, fn, arg);
}

static command_callback_code_t loop_run(void) {
    while (loop.head) {
        ready_t *r = loop.head;
        loop.head = r->next;
        if (!loop.head) {
            loop.tail = NULL;
        }
        cont_fn fn = r->fn;
        void *arg = r->arg;
        uint32_t code = r->code;
        free(r);
        fn(arg, code);
    }
    if (loop.nwaits > 0) {
        return COMMAND_CALLBACK_CODE_WAIT(loop.set);
    }
    if (!loop.returned) {
        __builtin_trap(); /* a guest bug: nothing to wait for, no result */
    }
    command_waitable_set_drop(loop.set);
    return COMMAND_CALLBACK_CODE_EXIT;
}

static void task_return(bool ok) {
    exports_wasi_cli_run_result_void_void_t r = {!ok};
    loop.returned = true;
    exports_wasi_cli_run_run_return(r);
}

command_callback_code_t exports_wasi_cli_run_run_callback(command_event_t *event) {
    switch (event->event) {
    case COMMAND_EVENT_SUBTASK:
    case COMMAND_EVENT_STREAM_READ:
    case COMMAND_EVENT_STREAM_WRITE:
    case COMMAND_EVENT_FUTURE_READ:
    case COMMAND_EVENT_FUTURE_WRITE: {
        bool subtask = event->event == COMMAND_EVENT_SUBTASK;
        for (size_t i = 0; i < loop.nwaits; i++) {
            if (loop.waits[i].waitable != event->waitable || loop.waits[i].subtask != subtask) {
                continue;
            }
            if (subtask && event->code != COMMAND_SUBTASK_RETURNED) {
                break; /* started: keep waiting */
            }
            cont_fn fn = loop.waits[i].fn;
            void *arg = loop.waits[i].arg;
            loop.waits[i] = loop.waits[--loop.nwaits];
            if (subtask) {
                command_subtask_drop(event->waitable);
            } else {
                command_waitable_join(event->waitable, 0);
            }
            fn(arg, event->code);
            break;
        }
        break;
    }
    default:
        break; /* EVENT_NONE / EVENT_CANCEL: nothing of ours */
    }
    return loop_run();
}

/* ------------------------------------------------------------- output --- */

/* stdout or stderr: a stream given to write-via-stream on first use. */
typedef struct {
    bool is_stderr;
    bool open;
    wasi_cli_stdin_stream_u8_writer_t writer;
    uint32_t result; /* future<result<_, error-code>> (readable end) */
    union {
        wasi_cli_stdout_result_void_error_code_t out;
        wasi_cli_stderr_result_void_error_code_t err;
    } value;
    /* the write or close in progress */
    const uint8_t *p;
    size_t left;
    done_fn done;
    void *arg;
} out_t;

static out_t out_stdout = {.is_stderr = false};
static out_t out_stderr = {.is_stderr = true};

static void out_open(out_t *o) {
    if (o->open) {
        return;
    }
    /* The stream<u8> intrinsics wit-bindgen names after wasi:cli/stdin are
     * those of every wasi:cli stream<u8> (one type). */
    wasi_cli_stdin_stream_u8_t reader = wasi_cli_stdin_stream_u8_new(&o->writer);
    o->result = o->is_stderr ? wasi_cli_stderr_write_via_stream(reader)
                             : wasi_cli_stdout_write_via_stream(reader);
    o->open = true;
}

static void out_issue(out_t *o);

static void out_step(void *arg, uint32_t status) {
    out_t *o = arg;
    size_t n = COMMAND_WAITABLE_COUNT(status);
    if (n > o->left) {
        n = o->left;
    }
    o->p += n;
    o->left -= n;
    if (COMMAND_WAITABLE_STATE(status) != COMMAND_WAITABLE_COMPLETED) {
        o->done(o->arg, false); /* the host dropped the reader */
    } else if (o->left == 0) {
        o->done(o->arg, true);
    } else {
        out_issue(o);
    }
}

static void out_issue(out_t *o) {
    size_t n = o->left < CHUNK_SIZE ? o->left : CHUNK_SIZE;
    uint32_t status = wasi_cli_stdin_stream_u8_write(o->writer, o->p, n);
    on_status(o->writer, status, out_step, o);
}

/* Writes all of `data` (valid until `done`), then done(ok). */
static void out_write(out_t *o, const void *data, size_t len, done_fn done, void *arg) {
    out_open(o);
    o->p = data;
    o->left = len;
    o->done = done;
    o->arg = arg;
    if (len == 0) {
        later(out_step, o, COMMAND_WAITABLE_COMPLETED);
        return;
    }
    out_issue(o);
}

static void out_closed(void *arg, uint32_t status) {
    out_t *o = arg;
    bool ok = COMMAND_WAITABLE_STATE(status) == COMMAND_WAITABLE_COMPLETED &&
              !(o->is_stderr ? o->value.err.is_err : o->value.out.is_err);
    if (o->is_stderr) {
        wasi_cli_stderr_future_result_void_error_code_drop_readable(o->result);
    } else {
        wasi_cli_stdout_future_result_void_error_code_drop_readable(o->result);
    }
    o->open = false;
    o->done(o->arg, ok);
}

static void out_never_opened(void *arg, uint32_t status) {
    out_t *o = arg;
    o->done(o->arg, true);
}

/* Ends the stream (if it was opened) and waits for write-via-stream's
 * result, so that everything written is out; then done(ok). */
static void out_close(out_t *o, done_fn done, void *arg) {
    o->done = done;
    o->arg = arg;
    if (!o->open) {
        later(out_never_opened, o, 0);
        return;
    }
    wasi_cli_stdin_stream_u8_drop_writable(o->writer);
    uint32_t status =
        o->is_stderr
            ? wasi_cli_stderr_future_result_void_error_code_read(o->result, &o->value.err)
            : wasi_cli_stdout_future_result_void_error_code_read(o->result, &o->value.out);
    on_status(o->result, status, out_closed, o);
}

/* ------------------------------------------------------------- finish --- */

/* How the command ends: 0 / 1 as run's ok / err, anything else through
 * exit-with-code. Both outputs are closed (flushed) first. */
static int exit_code_pending;

static void finish_stderr_closed(void *arg, bool ok) {
    int code = exit_code_pending;
    if (code == 0 || code == 1) {
        task_return(code == 0);
    } else {
        wasi_cli_exit_exit_with_code((uint8_t)code);
        __builtin_trap(); /* exit-with-code does not return */
    }
}

static void finish_stdout_closed(void *arg, bool ok) {
    out_close(&out_stderr, finish_stderr_closed, NULL);
}

static void finish(int code) {
    exit_code_pending = code;
    out_close(&out_stdout, finish_stdout_closed, NULL);
}

/* stderr: `text` + "\n", then finish(code). */
static buf_t message;

static void message_written(void *arg, bool ok) {
    finish((int)(intptr_t)arg);
}

static void fail_with(const char *prefix, const char *text, int code) {
    buf_append_str(&message, prefix);
    buf_append_str(&message, text);
    buf_append_str(&message, "\n");
    out_write(&out_stderr, message.ptr, message.len, message_written, (void *)(intptr_t)code);
}

static void usage(const char *what) {
    fail_with("usage: ", what, EXIT_USAGE);
}

/* Frees `code` and fails with "error <case name>", exit 2. */
static void fail_code(error_code_t *code) {
    const char *name = error_code_name(code);
    wasi_http_types_error_code_free(code);
    fail_with("error ", name, EXIT_ERROR_CODE);
}

/* -------------------------------------------------------------- hello --- */

static buf_t hello_text;

static void hello_written(void *arg, bool ok) {
    finish(0);
}

static void hello(const command_list_string_t *args) {
    buf_append_str(&hello_text, "hello from a WASI 0.3 command\n");
    for (size_t i = 0; i < args->len; i++) {
        buf_append(&hello_text, args->ptr[i].ptr, args->ptr[i].len);
        buf_append_str(&hello_text, "\n");
    }
    command_list_tuple2_string_string_t vars = {NULL, 0};
    wasi_cli_environment_get_environment(&vars);
    for (size_t i = 0; i < vars.len; i++) {
        const command_string_t *k = &vars.ptr[i].f0;
        const command_string_t *v = &vars.ptr[i].f1;
        if (k->len >= 4 && memcmp(k->ptr, "CMD_", 4) == 0) {
            buf_append(&hello_text, k->ptr, k->len);
            buf_append_str(&hello_text, "=");
            buf_append(&hello_text, v->ptr, v->len);
            buf_append_str(&hello_text, "\n");
        }
    }
    command_list_tuple2_string_string_free(&vars);
    out_write(&out_stdout, hello_text.ptr, hello_text.len, hello_written, NULL);
}

/* --------------------------------------------------------------- exit --- */

static void exit_cmd(const command_string_t *s) {
    unsigned v = 0;
    bool ok = s->len > 0 && s->len <= 3;
    for (size_t i = 0; ok && i < s->len; i++) {
        ok = s->ptr[i] >= '0' && s->ptr[i] <= '9';
        v = v * 10 + (unsigned)(s->ptr[i] - '0');
    }
    if (!ok || v > 255) {
        usage("exit CODE (0-255)");
        return;
    }
    wasi_cli_exit_exit_with_code((uint8_t)v);
    __builtin_trap(); /* exit-with-code does not return */
}

/* -------------------------------------------------------------- fetch --- */

static struct {
    wasi_http_types_future_result_option_own_trailers_error_code_writer_t req_trailers;
    wasi_http_types_result_option_own_trailers_error_code_t req_trailers_value;
    wasi_http_types_future_result_void_error_code_writer_t res;
    wasi_http_types_result_void_error_code_t res_value;
    wasi_http_client_result_own_response_error_code_t result;
    uint16_t status;
    buf_t line;
    wasi_http_types_stream_u8_t body;
    wasi_http_types_future_result_option_own_trailers_error_code_t trailers;
    wasi_http_types_result_option_own_trailers_error_code_t trailers_value;
    bool ended;
    uint8_t buf[CHUNK_SIZE];
} F;

/* http://authority[/path][?query][#fragment]; the scheme is
 * case-insensitive, the fragment dropped, an empty path becomes "/". Both
 * results are malloc'd. */
static bool parse_url(const command_string_t *url, command_string_t *authority,
                      command_string_t *path_with_query) {
    static const char SCHEME[] = "http://";
    size_t slen = sizeof(SCHEME) - 1;
    if (url->len < slen) {
        return false;
    }
    for (size_t i = 0; i < slen; i++) {
        uint8_t c = url->ptr[i];
        if (c >= 'A' && c <= 'Z') {
            c = (uint8_t)(c - 'A' + 'a');
        }
        if (c != (uint8_t)SCHEME[i]) {
            return false;
        }
    }
    const uint8_t *a = url->ptr + slen;
    size_t rest = url->len - slen;
    size_t alen = 0;
    while (alen < rest && a[alen] != '/' && a[alen] != '?' && a[alen] != '#') {
        alen++;
    }
    if (alen == 0) {
        return false;
    }
    const uint8_t *p = a + alen;
    size_t plen = 0;
    while (alen + plen < rest && p[plen] != '#') {
        plen++;
    }
    bool slash = plen == 0 || p[0] != '/';
    authority->ptr = xmalloc(alen);
    memcpy(authority->ptr, a, alen);
    authority->len = alen;
    path_with_query->ptr = xmalloc(plen + 1);
    size_t off = 0;
    if (slash) {
        path_with_query->ptr[off++] = '/';
    }
    if (plen) {
        memcpy(path_with_query->ptr + off, p, plen);
    }
    path_with_query->len = off + plen;
    return true;
}

static void drop_writer_req_trailers(void *arg, uint32_t status) {
    wasi_http_types_future_result_option_own_trailers_error_code_drop_writable(F.req_trailers);
}

static void drop_writer_res(void *arg, uint32_t status) {
    wasi_http_types_future_result_void_error_code_drop_writable(F.res);
}

static void body_read(void *arg, uint32_t status);

static void read_body(void) {
    uint32_t status = wasi_http_types_stream_u8_read(F.body, F.buf, sizeof(F.buf));
    on_status(F.body, status, body_read, NULL);
}

static void trailers_read(void *arg, uint32_t status) {
    wasi_http_types_future_result_option_own_trailers_error_code_drop_readable(F.trailers);
    if (COMMAND_WAITABLE_STATE(status) != COMMAND_WAITABLE_COMPLETED) {
        /* The writer went away without a value: a body cut short. */
        fail_with("error ", "HTTP-response-incomplete", EXIT_ERROR_CODE);
        return;
    }
    if (F.trailers_value.is_err) {
        fail_code(&F.trailers_value.val.err);
        return;
    }
    if (F.trailers_value.val.ok.is_some) {
        wasi_http_types_fields_drop_own(F.trailers_value.val.ok.val);
    }
    finish(F.status == 200 ? 0 : 1);
}

static void body_done(void) {
    wasi_http_types_stream_u8_drop_readable(F.body);
    memset(&F.trailers_value, 0, sizeof(F.trailers_value));
    uint32_t status = wasi_http_types_future_result_option_own_trailers_error_code_read(
        F.trailers, &F.trailers_value);
    on_status(F.trailers, status, trailers_read, NULL);
}

static void body_written(void *arg, bool ok) {
    if (!ok) {
        /* stdout went away: stop reading. */
        wasi_http_types_stream_u8_drop_readable(F.body);
        wasi_http_types_future_result_option_own_trailers_error_code_drop_readable(F.trailers);
        finish(1);
        return;
    }
    if (F.ended) {
        body_done();
    } else {
        read_body();
    }
}

static void body_read(void *arg, uint32_t status) {
    size_t n = COMMAND_WAITABLE_COUNT(status);
    F.ended = COMMAND_WAITABLE_STATE(status) != COMMAND_WAITABLE_COMPLETED;
    if (n > 0) {
        out_write(&out_stdout, F.buf, n, body_written, NULL);
    } else if (F.ended) {
        body_done();
    } else {
        read_body(); /* an empty read: ask again */
    }
}

static void line_written(void *arg, bool ok) {
    body_written(NULL, ok);
}

static void sent(void *arg, uint32_t code) {
    if (F.result.is_err) {
        fail_code(&F.result.val.err);
        return;
    }
    wasi_http_types_own_response_t resp = F.result.val.ok;
    F.status = wasi_http_types_method_response_get_status_code(
        wasi_http_types_borrow_response(resp));

    wasi_http_types_future_result_void_error_code_t res =
        wasi_http_types_future_result_void_error_code_new(&F.res);
    wasi_http_types_tuple2_stream_u8_future_result_option_own_trailers_error_code_t ret;
    wasi_http_types_static_response_consume_body(resp, res, &ret);
    F.body = ret.f0;
    F.trailers = ret.f1;
    /* consume-body's `res`: we took the body fine. */
    memset(&F.res_value, 0, sizeof(F.res_value));
    on_status(F.res, wasi_http_types_future_result_void_error_code_write(F.res, &F.res_value),
              drop_writer_res, NULL);

    buf_append_str(&F.line, "status ");
    buf_append_u64(&F.line, F.status);
    buf_append_str(&F.line, "\n");
    F.ended = false;
    out_write(&out_stdout, F.line.ptr, F.line.len, line_written, NULL);
}

static void fetch(const command_string_t *url) {
    command_string_t authority, path;
    if (!parse_url(url, &authority, &path)) {
        usage("fetch http://AUTHORITY[/PATH]");
        return;
    }
    /* No body; the trailers future resolves to ok(none). */
    wasi_http_types_future_result_option_own_trailers_error_code_t trailers =
        wasi_http_types_future_result_option_own_trailers_error_code_new(&F.req_trailers);
    memset(&F.req_trailers_value, 0, sizeof(F.req_trailers_value));
    on_status(F.req_trailers,
              wasi_http_types_future_result_option_own_trailers_error_code_write(
                  F.req_trailers, &F.req_trailers_value),
              drop_writer_req_trailers, NULL);
    wasi_http_types_tuple2_own_request_future_result_void_error_code_t ret;
    wasi_http_types_static_request_new(wasi_http_types_constructor_fields(), NULL, trailers, NULL,
                                       &ret);
    /* The transmission result is not needed (send reports errors). */
    wasi_http_types_future_result_void_error_code_drop_readable(ret.f1);
    wasi_http_types_own_request_t req = ret.f0;
    wasi_http_types_borrow_request_t rb = wasi_http_types_borrow_request(req);
    wasi_http_types_scheme_t scheme;
    memset(&scheme, 0, sizeof(scheme));
    scheme.tag = WASI_HTTP_TYPES_SCHEME_HTTP;
    /* The method defaults to GET. */
    bool ok = wasi_http_types_method_request_set_scheme(rb, &scheme) &&
              wasi_http_types_method_request_set_authority(rb, &authority) &&
              wasi_http_types_method_request_set_path_with_query(rb, &path);
    free(authority.ptr);
    free(path.ptr);
    if (!ok) {
        wasi_http_types_request_drop_own(req);
        usage("fetch http://AUTHORITY[/PATH] (the host refused the authority or path)");
        return;
    }
    on_subtask(wasi_http_client_send(req, &F.result), sent, NULL);
}

/* ---------------------------------------------------------------- run --- */

static command_list_string_t args;

command_callback_code_t exports_wasi_cli_run_run(void) {
    loop.set = command_waitable_set_new();
    wasi_cli_environment_get_arguments(&args);
    const command_string_t *a = args.ptr;
    if (args.len <= 1) {
        hello(&args);
    } else if (str_eq(&a[1], "exit") && args.len == 3) {
        exit_cmd(&a[2]);
    } else if (str_eq(&a[1], "fetch") && args.len == 3) {
        fetch(&a[2]);
    } else if (str_eq(&a[1], "trap") && args.len == 2) {
        __builtin_trap();
    } else {
        usage("[exit CODE | fetch URL | trap]");
    }
    return loop_run();
}
