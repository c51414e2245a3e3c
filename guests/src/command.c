/*
 * command-p2 (WASI 0.2): a `wasi:cli/command` test guest for `wasi-http run`.
 *
 * A plain C program (wasi-libc, `-mexec-model=command`, libc stdio) turned
 * into a component with the preview1 *command* adapter, which exports
 * `wasi:cli/run@0.2.12` and calls `_start` (crt1, then `main`). Outgoing
 * requests use `wasi:http/outgoing-handler@0.2.12`; explicit exit codes use
 * `wasi:cli/exit@0.2.12` `exit-with-code` (libc's exit() goes through the
 * adapter's proc_exit, which can only say ok/err, i.e. 0 or 1).
 *
 * A command module's pitfall: wasm-ld wraps *every* export of a command
 * module, `cabi_realloc` (the bindings') included, in __wasm_call_ctors /
 * __wasm_call_dtors, so both run again whenever the host hands this module a
 * list or string (poll's ready list, a read's bytes, the environment, ...),
 * and an import called from inside cabi_realloc traps ("cannot leave
 * component instance"). Hence: no constructor may call an import (no libc
 * `environ`, whose eager initializer is a constructor: the environment comes
 * from wasi:cli/environment directly), and libc's stdout is unbuffered, so
 * that the dtors' stdio flush never has anything to write (stderr is
 * unbuffered anyway).
 *
 * Contract, by argv (argv[0] is the component path; the same for command-p3):
 *
 *   (no arguments)   stdout: the line "hello from a WASI 0.2 command", then
 *                    each argument on a line of its own (that is argv[0],
 *                    the path), then a line KEY=VALUE for each environment
 *                    variable whose name starts with CMD_ (host order);
 *                    exit 0
 *   exit CODE        exit with CODE (decimal 0-255) via exit-with-code,
 *                    printing nothing
 *   fetch URL        GET URL (http://authority[/path][?query]; a #fragment
 *                    is dropped, an empty path is "/") with the HTTP client;
 *                    stdout: the line "status NNN", then the response body
 *                    as received; exit 0 if the status is 200, else 1. An
 *                    error-code (from handle, the response future, the body
 *                    stream or its trailers): stderr "error <error-code WIT
 *                    case name>" (e.g. "error connection-refused"), exit 2;
 *                    a body stream error without an error-code is reported
 *                    as "error stream-error" (exit 2)
 *   trap             trap (__builtin_trap)
 *   anything else    (unknown command, wrong argument count, bad CODE, a URL
 *                    that is not http://authority...): a "usage: ..." line
 *                    on stderr, exit 64
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command_core.h"

#define CHUNK_SIZE ((uint64_t)65536)
#define EXIT_USAGE 64
#define EXIT_ERROR_CODE 2

typedef wasi_http_types_error_code_t error_code_t;

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

/* Flushes libc's stdio, then exits with `code` (does not return). */
static _Noreturn void exit_with(uint8_t code) {
    fflush(stdout);
    fflush(stderr);
    wasi_cli_exit_exit_with_code(code);
    __builtin_trap(); /* exit-with-code does not return */
}

static _Noreturn void usage(const char *what) {
    fprintf(stderr, "usage: %s\n", what);
    exit_with(EXIT_USAGE);
}

static _Noreturn void fail(const char *name) {
    fflush(stdout);
    fprintf(stderr, "error %s\n", name);
    exit_with(EXIT_ERROR_CODE);
}

/* Frees `code` (its strings) and fails with its case name. */
static _Noreturn void fail_code(error_code_t *code) {
    const char *name = error_code_name(code);
    wasi_http_types_error_code_free(code);
    fail(name);
}

/* Blocks (wasi:io/poll.poll) until `p` is ready, then drops it. */
static void wait_pollable(wasi_io_poll_own_pollable_t p) {
    wasi_io_poll_borrow_pollable_t b = wasi_io_poll_borrow_pollable(p);
    wasi_io_poll_list_borrow_pollable_t list = {&b, 1};
    command_core_list_u32_t ready = {NULL, 0};
    wasi_io_poll_poll(&list, &ready);
    command_core_list_u32_free(&ready);
    wasi_io_poll_pollable_drop_own(p);
}

/* ---------------------------------------------------------------- hello -- */

static int hello(int argc, char **argv) {
    printf("hello from a WASI 0.2 command\n");
    for (int i = 0; i < argc; i++) {
        printf("%s\n", argv[i]);
    }
    command_core_list_tuple2_string_string_t vars = {NULL, 0};
    wasi_cli_environment_get_environment(&vars);
    for (size_t i = 0; i < vars.len; i++) {
        const command_core_string_t *k = &vars.ptr[i].f0;
        const command_core_string_t *v = &vars.ptr[i].f1;
        if (k->len >= 4 && memcmp(k->ptr, "CMD_", 4) == 0) {
            printf("%.*s=%.*s\n", (int)k->len, (const char *)k->ptr, (int)v->len,
                   (const char *)v->ptr);
        }
    }
    command_core_list_tuple2_string_string_free(&vars);
    return 0;
}

/* ----------------------------------------------------------------- exit -- */

static _Noreturn void exit_cmd(const char *s) {
    size_t n = strlen(s);
    unsigned v = 0;
    if (n == 0 || n > 3) {
        usage("exit CODE (0-255)");
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            usage("exit CODE (0-255)");
        }
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 255) {
        usage("exit CODE (0-255)");
    }
    exit_with((uint8_t)v);
}

/* ---------------------------------------------------------------- fetch -- */

typedef struct {
    command_core_string_t authority;
    command_core_string_t path_with_query; /* owned (malloc) */
} url_t;

/* http://authority[/path][?query][#fragment]; the scheme is
 * case-insensitive, the fragment dropped, an empty path becomes "/". */
static bool parse_url(const char *url, url_t *u) {
    static const char SCHEME[] = "http://";
    for (size_t i = 0; i < sizeof(SCHEME) - 1; i++) {
        char c = url[i];
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        if (c != SCHEME[i]) {
            return false;
        }
    }
    const char *a = url + 7;
    size_t alen = strcspn(a, "/?#");
    if (alen == 0) {
        return false;
    }
    const char *p = a + alen;
    size_t plen = strcspn(p, "#");
    bool slash = plen == 0 || p[0] != '/';
    char *pq = malloc(plen + 2);
    if (!pq) {
        __builtin_trap();
    }
    size_t off = 0;
    if (slash) {
        pq[off++] = '/';
    }
    memcpy(pq + off, p, plen);
    u->authority.ptr = (uint8_t *)a;
    u->authority.len = alen;
    u->path_with_query.ptr = (uint8_t *)pq;
    u->path_with_query.len = off + plen;
    return true;
}

static int fetch(const char *url) {
    url_t u;
    if (!parse_url(url, &u)) {
        usage("fetch http://AUTHORITY[/PATH]");
    }

    wasi_http_types_own_outgoing_request_t req =
        wasi_http_types_constructor_outgoing_request(wasi_http_types_constructor_fields());
    wasi_http_types_borrow_outgoing_request_t rb = wasi_http_types_borrow_outgoing_request(req);
    wasi_http_types_scheme_t scheme;
    memset(&scheme, 0, sizeof(scheme));
    scheme.tag = WASI_HTTP_TYPES_SCHEME_HTTP;
    /* The method defaults to GET. */
    if (!wasi_http_types_method_outgoing_request_set_scheme(rb, &scheme) ||
        !wasi_http_types_method_outgoing_request_set_authority(rb, &u.authority) ||
        !wasi_http_types_method_outgoing_request_set_path_with_query(rb, &u.path_with_query)) {
        wasi_http_types_outgoing_request_drop_own(req);
        usage("fetch http://AUTHORITY[/PATH] (the host refused the authority or path)");
    }
    free(u.path_with_query.ptr);

    /* No body: the request goes out with an empty one. */
    wasi_http_types_own_future_incoming_response_t fut;
    error_code_t code;
    if (!wasi_http_outgoing_handler_handle(req, NULL, &fut, &code)) {
        fail_code(&code);
    }
    wasi_http_types_borrow_future_incoming_response_t fb =
        wasi_http_types_borrow_future_incoming_response(fut);
    wait_pollable(wasi_http_types_method_future_incoming_response_subscribe(fb));
    wasi_http_types_result_result_own_incoming_response_error_code_void_t r;
    if (!wasi_http_types_method_future_incoming_response_get(fb, &r) || r.is_err) {
        fail("internal-error"); /* not ready after its pollable, or taken twice */
    }
    wasi_http_types_future_incoming_response_drop_own(fut);
    if (r.val.ok.is_err) {
        fail_code(&r.val.ok.val.err);
    }
    wasi_http_types_own_incoming_response_t resp = r.val.ok.val.ok;
    wasi_http_types_borrow_incoming_response_t respb =
        wasi_http_types_borrow_incoming_response(resp);
    wasi_http_types_status_code_t status = wasi_http_types_method_incoming_response_status(respb);
    printf("status %u\n", (unsigned)status);

    wasi_http_types_own_incoming_body_t body;
    wasi_http_types_own_input_stream_t stream;
    if (!wasi_http_types_method_incoming_response_consume(respb, &body) ||
        !wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(body),
                                                     &stream)) {
        fail("internal-error"); /* consumed twice: cannot happen */
    }
    wasi_io_streams_borrow_input_stream_t sb = wasi_io_streams_borrow_input_stream(stream);
    for (;;) {
        command_core_list_u8_t chunk = {NULL, 0};
        wasi_io_streams_stream_error_t e;
        if (!wasi_io_streams_method_input_stream_blocking_read(sb, CHUNK_SIZE, &chunk, &e)) {
            if (e.tag == WASI_IO_STREAMS_STREAM_ERROR_CLOSED) {
                break;
            }
            wasi_io_error_own_error_t io_err = e.val.last_operation_failed;
            if (wasi_http_types_http_error_code(wasi_io_error_borrow_error(io_err), &code)) {
                fail_code(&code);
            }
            fail("stream-error");
        }
        if (chunk.len == 0) {
            /* An empty blocking read is allowed: wait for readiness. */
            wait_pollable(wasi_io_streams_method_input_stream_subscribe(sb));
        } else {
            fwrite(chunk.ptr, 1, chunk.len, stdout);
        }
        command_core_list_u8_free(&chunk);
    }
    wasi_io_streams_input_stream_drop_own(stream);

    /* The body ended: an error may still come with the trailers. */
    wasi_http_types_own_future_trailers_t ft = wasi_http_types_static_incoming_body_finish(body);
    wasi_http_types_borrow_future_trailers_t ftb = wasi_http_types_borrow_future_trailers(ft);
    wasi_http_types_result_result_option_own_trailers_error_code_void_t tr;
    while (!wasi_http_types_method_future_trailers_get(ftb, &tr)) {
        wait_pollable(wasi_http_types_method_future_trailers_subscribe(ftb));
    }
    if (tr.is_err) {
        fail("internal-error"); /* taken twice: cannot happen */
    }
    if (tr.val.ok.is_err) {
        fail_code(&tr.val.ok.val.err);
    }
    if (tr.val.ok.val.ok.is_some) {
        wasi_http_types_fields_drop_own(tr.val.ok.val.ok.val);
    }
    wasi_http_types_future_trailers_drop_own(ft);
    wasi_http_types_incoming_response_drop_own(resp);
    return status == 200 ? 0 : 1;
}

/* ----------------------------------------------------------------- main -- */

int main(int argc, char **argv) {
    /* See the top of the file: nothing may sit in stdio buffers. */
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc <= 1) {
        return hello(argc, argv);
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "exit") == 0 && argc == 3) {
        exit_cmd(argv[2]);
    }
    if (strcmp(cmd, "fetch") == 0 && argc == 3) {
        return fetch(argv[2]);
    }
    if (strcmp(cmd, "trap") == 0 && argc == 2) {
        __builtin_trap();
    }
    usage("[exit CODE | fetch URL | trap]");
}
