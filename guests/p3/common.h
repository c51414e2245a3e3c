/*
 * Shared helpers for the wasi-http-host WASI 0.3 test guests (the
 * `wasi:http/service` world, callback ABI).
 *
 * Ownership conventions (same as the wit-bindgen C bindings): arguments passed
 * by pointer to an import are borrowed; lists/strings returned by imports are
 * malloc'd and owned by the caller; resource handles and stream/future ends
 * returned are owned and must be dropped (or given away) exactly once,
 * children before parents. A future's writable end must be written before it
 * is dropped (the component model traps otherwise), so every helper that
 * takes a trailers/status future writer resolves it on every path.
 *
 * Concurrency model: one instance runs many `handle` calls at once. Each call
 * is a task (`task_t`) with its own waitable set; all per-request state hangs
 * off the task (the task pointer is the task's context slot 0), never off
 * globals. Asynchronous operations complete through callbacks that run from
 * the task's event loop (`task_run`), never re-entrantly from the function
 * that started them, so a long run of operations that complete at once
 * cannot grow the stack. A task exits (callback code EXIT) once nothing is
 * pending on it and its ready queue is empty.
 */
#ifndef GUEST_P3_COMMON_H
#define GUEST_P3_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "service.h"

/* Largest read request / write we issue on a stream. */
#define CHUNK_SIZE ((size_t)65536)

/* Short aliases for the long generated type names. */
typedef wasi_http_types_own_fields_t own_fields_t;
typedef wasi_http_types_borrow_fields_t borrow_fields_t;
typedef wasi_http_types_header_error_t header_error_t;
typedef wasi_http_types_error_code_t error_code_t;
typedef wasi_http_types_own_request_t own_request_t;
typedef wasi_http_types_borrow_request_t borrow_request_t;
typedef wasi_http_types_own_response_t own_response_t;
typedef wasi_http_types_borrow_response_t borrow_response_t;
typedef wasi_http_types_own_request_options_t own_request_options_t;
/* A body: stream<u8> ends. */
typedef wasi_http_types_stream_u8_t stream_reader_t;
typedef wasi_http_types_stream_u8_writer_t stream_writer_t;
/* future<result<option<trailers>, error-code>> ends and value. */
typedef wasi_http_types_future_result_option_own_trailers_error_code_t trailers_reader_t;
typedef wasi_http_types_future_result_option_own_trailers_error_code_writer_t trailers_writer_t;
typedef wasi_http_types_result_option_own_trailers_error_code_t trailers_result_t;
/* future<result<_, error-code>> ends and value (transmission and `res`). */
typedef wasi_http_types_future_result_void_error_code_t status_reader_t;
typedef wasi_http_types_future_result_void_error_code_writer_t status_writer_t;
typedef wasi_http_types_result_void_error_code_t status_result_t;
typedef wasi_http_types_list_tuple2_field_name_field_value_t field_list_t;
typedef wasi_http_types_tuple2_field_name_field_value_t field_entry_t;

/* ------------------------------------------------------------ strings --- */

/* A borrowed view of a C string as a bindings string (no copy). */
service_string_t str_view(const char *s);
/* Exact byte comparison of a bindings string with a C string. */
bool str_eq(const uint8_t *p, size_t n, const char *lit);
/* ASCII case-insensitive comparison (for header names). */
bool str_ieq(const uint8_t *p, size_t n, const char *lit);
/* ASCII case-insensitive prefix test. */
bool str_istarts(const uint8_t *p, size_t n, const char *prefix);
/* Parses a plain unsigned decimal (no sign, no spaces, 1..20 digits). */
bool parse_u64(const uint8_t *p, size_t n, uint64_t *out);

/* --------------------------------------------------- growable buffer --- */

typedef struct {
    uint8_t *ptr;
    size_t len;
    size_t cap;
} buf_t;

/* All append functions return false on allocation failure (buffer intact). */
bool buf_append(buf_t *b, const void *data, size_t len);
bool buf_append_str(buf_t *b, const char *s);
bool buf_append_u64(buf_t *b, uint64_t v);
void buf_free(buf_t *b);

/* ------------------------------------------------------- header lists --- */

/* An owned list of (name, value) pairs, to be turned into `fields`. */
typedef struct {
    field_entry_t *ptr;
    size_t len;
    size_t cap;
} hdrs_t;

/* Appends `<prefix><name>: <value>`; copies everything. */
bool hdrs_add(hdrs_t *h, const char *prefix, const uint8_t *name, size_t name_len,
              const uint8_t *value, size_t value_len);
bool hdrs_add_str(hdrs_t *h, const char *name, const char *value);
bool hdrs_add_u64(hdrs_t *h, const char *name, uint64_t value);
/* The value as lower-case hex, without a prefix. */
bool hdrs_add_hex(hdrs_t *h, const char *name, uint64_t value);
void hdrs_free(hdrs_t *h);
/* `fields.from-list(h)`; does not free `h`. On failure *err is owned by the
 * caller (free with wasi_http_types_header_error_free). */
bool hdrs_to_fields(const hdrs_t *h, own_fields_t *out, header_error_t *err);

/* `fields.copy-all()` (caller frees with
 * wasi_http_types_list_tuple2_field_name_field_value_free). */
void fields_entries(borrow_fields_t f, field_list_t *out);
/* The request's header entries (`get-headers` + `copy-all`). */
void request_header_entries(borrow_request_t req, field_list_t *out);

/* Returns the first value of header `name` (case-insensitive) in `entries`,
 * or NULL. */
const wasi_http_types_field_value_t *find_header(const field_list_t *entries, const char *name);
/* find_header + parse_u64. Returns false when the header is present but not
 * a number; *present tells whether it was there (*out then set). */
bool header_u64(const field_list_t *entries, const char *name, bool *present, uint64_t *out);
/* The request's path without the query ("" when it has none); owned by the
 * caller (free with free()), NUL-terminated. */
char *request_path(borrow_request_t req);

/* ----------------------------------------------------------- names ------ */

/* The WIT case name of an error-code (e.g. "connection-refused"). */
const char *error_code_name(const error_code_t *code);
/* "invalid-syntax" / "forbidden" / "immutable" / "size-exceeded" / "other". */
const char *header_error_name(const header_error_t *err);
/* Upper-case method name, or NULL for `other` (use the string then). */
const char *method_name(const wasi_http_types_method_t *m);

/* ------------------------------------------------------------- tasks ---- */

typedef struct task task_t;
/* A continuation: `code` is the event code (a waitable status for stream and
 * future operations, a subtask state for subtasks). */
typedef void (*task_fn)(task_t *t, void *arg, uint32_t code);
/* A completion: `ok` as the operation defines it. */
typedef void (*done_fn)(task_t *t, void *arg, bool ok);

/* `handle` calls this guest function with its task; it must eventually give
 * the task its result (task_return_*, respond*) on every path. */
void guest_handle(task_t *t, own_request_t request);

/* How many `handle` calls (tasks) this instance is running right now. */
uint32_t tasks_in_flight(void);
/* A number unique to this instance (random, fixed at first use, never 0). */
uint64_t instance_id(void);

/* Zeroed memory owned by the task, freed when the task exits. Traps when
 * out of memory. */
void *task_alloc(task_t *t, size_t size);
/* Runs `fn(t, arg, code)` from the task's loop, soon. */
void task_later(task_t *t, task_fn fn, void *arg, uint32_t code);
/* Waits for the next event on `waitable` (joins it to the task's set), then
 * runs `fn` with the event code (and takes the waitable out of the set). */
void task_wait(task_t *t, uint32_t waitable, task_fn fn, void *arg);
/* For a stream/future operation's return value: BLOCKED waits for the
 * event, anything else runs `fn` with that status soon. */
void task_on_status(task_t *t, uint32_t waitable, uint32_t status, task_fn fn, void *arg);
/* For an async import's return value: runs `fn` (code RETURNED) once the
 * subtask returned, dropping the subtask. */
void task_on_subtask(task_t *t, service_subtask_status_t status, task_fn fn, void *arg);
/* monotonic-clock.wait-for(ms), then `fn`. The instance stays free. */
void task_sleep_ms(task_t *t, uint64_t ms, task_fn fn, void *arg);
/* Whether the task has given its result yet. */
bool task_returned(const task_t *t);

/* task.return(ok(response)) / task.return(err(code)). Exactly once. */
void task_return_response(task_t *t, own_response_t response);
void task_return_error(task_t *t, const error_code_t *code);
/* task.return(err(internal-error(some(msg)))). */
void task_return_internal(task_t *t, const char *msg);

/* ----------------------------------------------------- stream/futures --- */

typedef uint32_t (*stream_write_fn)(uint32_t writer, const uint8_t *buf, size_t len);

typedef struct {
    uint32_t writer;
    stream_write_fn write;
    const uint8_t *p;
    size_t left;
    done_fn done;
    void *arg;
} write_op_t;

/* Writes all of `data` (which must stay valid until `done`) to a body
 * stream, waiting for each write to complete (backpressure). ok=false when
 * the reader went away (the writer must then only be dropped). */
void write_all(task_t *t, write_op_t *op, stream_writer_t w, const void *data, size_t len,
               done_fn done, void *arg);
/* The same with another stream<u8> type's write intrinsic (wasi:cli). */
void write_all_with(task_t *t, write_op_t *op, stream_write_fn write, uint32_t w,
                    const void *data, size_t len, done_fn done, void *arg);

typedef void (*read_fn)(task_t *t, void *arg, size_t n, bool ended);

typedef struct {
    stream_reader_t reader;
    uint8_t *buf;
    size_t cap;
    read_fn done;
    void *arg;
} read_op_t;

/* Reads up to `cap` bytes into `buf`: done(n, ended); n > 0 unless ended;
 * ended: the writer dropped the stream (after these n bytes), the reader
 * must then only be dropped. */
void read_some(task_t *t, read_op_t *op, stream_reader_t r, uint8_t *buf, size_t cap,
               read_fn done, void *arg);

/* Reads a trailers future into *out, then drops the reader; ok=false if the
 * writer dropped it without a value. *out is the caller's (own trailers,
 * error strings). */
void read_trailers(task_t *t, trailers_reader_t r, trailers_result_t *out, done_fn done,
                   void *arg);
/* Reads a status future (transmission) into *out, then drops the reader. */
void read_status(task_t *t, status_reader_t r, status_result_t *out, done_fn done, void *arg);

/* Writes `value` to a trailers future and drops the writer once the write
 * is over; takes ownership of `value`: the trailers move to the reader (or
 * are dropped when the reader went away), error strings are freed. */
void write_trailers(task_t *t, trailers_writer_t w, trailers_result_t value);
void write_trailers_none(task_t *t, trailers_writer_t w);
/* err(internal-error(none)). */
void write_trailers_internal_error(task_t *t, trailers_writer_t w);
/* Writes ok(()) to a status future (a consume-body `res`), then drops it. */
void write_status_ok(task_t *t, status_writer_t w);

/* ------------------------------------------------------------ bodies ---- */

/* A message body received: the consume-body stream and trailers future. */
typedef struct {
    stream_reader_t body;
    trailers_reader_t trailers;
} body_in_t;

/* consume-body, with a `res` future resolved ok at once. */
void consume_request(task_t *t, own_request_t request, body_in_t *in);
void consume_response(task_t *t, own_response_t response, body_in_t *in);
/* Drops both ends (no operation may be pending on them). */
void body_in_drop(body_in_t *in);

/* A response body being written: our ends of its stream and trailers. */
typedef struct {
    stream_writer_t body;
    trailers_writer_t trailers;
} body_out_t;

/* Makes a response with `h` (always freed) and `status`, whose body is a new
 * stream, and returns it (task.return). If the host rejects the headers,
 * retries without the last `optional_tail` entries of `h` (used for
 * `trailer` declarations). On failure the task returns internal-error
 * instead and false is returned (nothing to clean up). */
bool respond_stream(task_t *t, uint16_t status, hdrs_t *h, size_t optional_tail, body_out_t *out);
/* Ends a body: drops the stream writer, then resolves the trailers (takes
 * ownership of `trailers`). */
void body_out_end(task_t *t, body_out_t *out, trailers_result_t trailers);
/* Ends a body without trailers (ok(none)). */
void body_out_end_ok(task_t *t, body_out_t *out);

/* A complete response with an in-memory body (copied) and no trailers.
 * Frees `h`. */
void respond(task_t *t, uint16_t status, hdrs_t *h, const void *body, size_t len);
/* A response with no extra headers and a C string body. */
void respond_text(task_t *t, uint16_t status, const char *body);

/* Copies `in` to `out` (backpressure: one chunk in flight), then forwards
 * the trailers (or their error); a failed write ends `out` with
 * internal-error. Takes both over; runs on its own within the task. */
void pipe_body(task_t *t, body_in_t in, body_out_t out);
/* Changes a chunk in place on its way through a pipe. */
typedef void (*transform_fn)(uint8_t *chunk, size_t len);
/* pipe_body with each chunk passed through `transform` before it is written. */
void pipe_body_with(task_t *t, body_in_t in, body_out_t out, transform_fn transform);

/* Writes `text` (copied) to wasi:cli/stdout, then done(ok). */
void print_stdout(task_t *t, const char *text, done_fn done, void *arg);

#endif
