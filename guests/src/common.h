/*
 * Shared helpers for the wasi-http-host test guests.
 *
 * Ownership conventions (same as the wit-bindgen C bindings): arguments passed
 * by pointer to an import are borrowed; lists/strings returned by imports are
 * malloc'd and owned by the caller; resource handles returned are owned and
 * must be dropped exactly once (children before parents).
 */
#ifndef GUEST_COMMON_H
#define GUEST_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy.h"

/* Largest read request / write we issue on a stream. */
#define CHUNK_SIZE ((size_t)65536)

/* Short aliases for the long generated type names. */
typedef wasi_http_types_own_fields_t own_fields_t;
typedef wasi_http_types_header_error_t header_error_t;
typedef wasi_http_types_error_code_t error_code_t;
typedef wasi_http_types_own_incoming_request_t own_incoming_request_t;
typedef wasi_http_types_own_response_outparam_t own_response_outparam_t;
typedef wasi_http_types_own_outgoing_response_t own_outgoing_response_t;
typedef wasi_http_types_own_outgoing_body_t own_outgoing_body_t;
typedef wasi_http_types_own_incoming_body_t own_incoming_body_t;
typedef wasi_http_types_own_incoming_response_t own_incoming_response_t;
typedef wasi_http_types_own_future_trailers_t own_future_trailers_t;
typedef wasi_http_types_own_future_incoming_response_t own_future_incoming_response_t;
typedef wasi_io_streams_own_input_stream_t own_input_stream_t;
typedef wasi_io_streams_own_output_stream_t own_output_stream_t;
typedef wasi_io_streams_borrow_input_stream_t borrow_input_stream_t;
typedef wasi_io_streams_borrow_output_stream_t borrow_output_stream_t;
typedef wasi_io_poll_own_pollable_t own_pollable_t;
typedef wasi_http_types_list_tuple2_field_name_field_value_t field_list_t;
typedef wasi_http_types_tuple2_field_name_field_value_t field_entry_t;

/* ------------------------------------------------------------ strings --- */

/* A borrowed view of a C string as a bindings string (no copy). */
proxy_string_t str_view(const char *s);
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
void hdrs_free(hdrs_t *h);
/* `fields.from-list(h)`; does not free `h`. */
bool hdrs_to_fields(const hdrs_t *h, own_fields_t *out, header_error_t *err);

/* Returns the first value of header `name` (case-insensitive) in `entries`,
 * or NULL. */
const wasi_http_types_field_value_t *find_header(const field_list_t *entries, const char *name);

/* ----------------------------------------------------------- names ------ */

/* The WIT case name of an error-code (e.g. "connection-refused"). */
const char *error_code_name(const error_code_t *code);
/* "invalid-syntax" / "forbidden" / "immutable". */
const char *header_error_name(header_error_t err);
/* Upper-case method name, or NULL for `other` (use the string then). */
const char *method_name(const wasi_http_types_method_t *m);

/* -------------------------------------------------------------- io ----- */

/* Blocks (via wasi:io/poll.poll) until `p` is ready, then drops it. */
void wait_pollable(own_pollable_t p);

/* Name for a stream error; consumes (drops) the io-error it may carry.
 * last-operation-failed -> the http-error-code name if the error maps to one,
 * else "stream-error"; closed -> "stream-closed". */
const char *stream_error_name(wasi_io_streams_stream_error_t *e);

/* Writes all of `data`, honouring check-write and waiting on subscribe when
 * the permit is 0. On failure returns false and sets *err_name (if given). */
bool write_all(borrow_output_stream_t s, const void *data, size_t len, const char **err_name);
/* flush, then waits until the flush completed. */
bool flush_wait(borrow_output_stream_t s, const char **err_name);

typedef enum { READ_DATA, READ_CLOSED, READ_FAILED } read_status_t;
/* blocking-read of up to CHUNK_SIZE bytes. READ_DATA: *chunk is owned by the
 * caller (free with proxy_list_u8_free) and non-empty. READ_FAILED: *err_name
 * set. */
read_status_t read_chunk(borrow_input_stream_t s, proxy_list_u8_t *chunk, const char **err_name);

/* Waits for a future-trailers and takes its value. Returns true on success:
 * *has is whether trailers exist, *trailers is then owned by the caller (a
 * child of `ft`: give it away or drop it before dropping `ft`). On error
 * returns false with *err_name set. Does not drop `ft`. */
bool wait_trailers(wasi_http_types_borrow_future_trailers_t ft, bool *has, own_fields_t *trailers,
                   const char **err_name);

/* Waits for a future-incoming-response and takes its value; drops `fut`.
 * Returns true with *resp owned, or false with *err_name set. */
bool wait_response(own_future_incoming_response_t fut, own_incoming_response_t *resp,
                   const char **err_name);
/* Takes the value of a ready future-incoming-response (after its pollable
 * fired). Does not drop `fut`. */
bool take_response(wasi_http_types_borrow_future_incoming_response_t fut,
                   own_incoming_response_t *resp, const char **err_name);

/* ------------------------------------------------------ responding ----- */

typedef struct {
    own_outgoing_body_t body;
    own_output_stream_t stream;
    bool stream_open;
} out_body_t;

/* Creates the response from `headers` (consumed) and `status`, takes its body
 * and body stream, and sets `out` (consumed) to it. On any failure `out` is
 * set to an internal-error instead and false is returned. */
bool start_response_fields(own_response_outparam_t out, uint16_t status, own_fields_t headers,
                           out_body_t *ob);
/* Same, building the headers from `h` (always freed). */
bool start_response(own_response_outparam_t out, uint16_t status, hdrs_t *h, out_body_t *ob);
/* Same, but if the host rejects the headers, retries without the last
 * `optional_tail` entries of `h` (used for `trailer` declarations). */
bool start_response_opt(own_response_outparam_t out, uint16_t status, hdrs_t *h,
                        size_t optional_tail, out_body_t *ob);
/* Flushes (waiting), drops the stream and finishes the body with the given
 * trailers (ownership passes; NULL for none). Returns false if the flush or
 * the finish failed, with *err_name (if given) set to the error name (the
 * finish error wins when both failed). */
bool finish_body(out_body_t *ob, own_fields_t *trailers, const char **err_name);
/* Drops the stream and the body without finishing (signals a broken body). */
void abort_body(out_body_t *ob);
/* A complete response with an in-memory body. Frees `h`. */
void respond(own_response_outparam_t out, uint16_t status, hdrs_t *h, const void *body,
             size_t len);
/* A response with no extra headers and a C string body. */
void respond_text(own_response_outparam_t out, uint16_t status, const char *body);
/* Sets `out` to err(internal-error(some(msg))). */
void respond_error(own_response_outparam_t out, const char *msg);

#endif
