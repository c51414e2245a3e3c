//! Log setup: where lines go and how piped text lines are written.

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::FormatFields;

/// How log lines are written.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logs go to stderr. Server workers write their lines in batches (one write when
/// they go idle, or every 100 ms), so a request does not pay a write or a thread
/// wake-up for its access line (that was a fifth of the serving cost). Lines are
/// never dropped.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let log = wasi_http_host::BatchedLog::new(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || log.writer());
    match format {
        LogFormat::Json => builder.json().init(),
        // Colour only on a terminal.
        LogFormat::Text if std::io::IsTerminal::is_terminal(&std::io::stderr()) => {
            builder.with_ansi(true).init()
        }
        // Piped or collected logs (a server's usual case, one access line per
        // request): the same text, written by a formatter made for it, without the
        // styling layer and the general-purpose field and time formatting (the access
        // line cost 13.5k instructions with those, 9k without styling).
        LogFormat::Text => builder
            .with_ansi(false)
            .with_timer(Rfc3339Micros)
            .fmt_fields(PlainFields)
            .init(),
    }
}

/// UTC time with microseconds, as the default timer writes it
/// (`2026-11-24T11:39:35.491946Z`).
struct Rfc3339Micros;

impl FormatTime for Rfc3339Micros {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        write!(
            w,
            "{}",
            humantime::format_rfc3339_micros(std::time::SystemTime::now())
        )
    }
}

/// Fields as `name=value`, separated by spaces, the message bare: strings quoted and
/// escaped (`Debug`), numbers and booleans as they are, other values by their
/// `Debug` (which is `Display` for `%` fields).
struct PlainFields;

impl<'w> FormatFields<'w> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> std::fmt::Result {
        let mut visitor = PlainVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: std::fmt::Result,
}

impl PlainVisitor<'_> {
    /// Writes the separator and `name=` (nothing for the message), then the value.
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> std::fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            if !self.first {
                self.writer.write_char(' ')?;
            }
            self.first = false;
            if field.name() != "message" {
                self.writer.write_str(field.name())?;
                self.writer.write_char('=')?;
            }
            value(&mut self.writer)
        })();
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.field(field, |w| write!(w, "{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |w| write!(w, "{value:?}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w| w.write_str(if value { "true" } else { "false" }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// The lines the fast formatter writes are the ones the default would.
    #[test]
    fn plain_fields_write_what_the_default_formatter_writes() {
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let emit = || {
            let id: Arc<str> = "c8908cc3-1".into();
            tracing::info!(
                target: "wasi_http::access",
                request_id = %id,
                method = %http_method(),
                version = ?Version::Http11,
                status = 200u16,
                bytes = 18u64,
                delta = -3i64,
                ok = true,
                duration_ms = 0.365483f64,
                outcome = "client \"gone\"",
            );
            tracing::warn!(error = %"bad\nthing", "guest said {}", 42);
        };
        #[derive(Debug)]
        enum Version {
            Http11,
        }
        fn http_method() -> &'static str {
            "GET"
        }
        let render = |fast: bool| {
            let sink = Sink::default();
            let out = sink.clone();
            let builder = tracing_subscriber::fmt()
                .with_ansi(false)
                .without_time()
                .with_writer(move || sink.clone());
            if fast {
                let subscriber = builder.fmt_fields(PlainFields).finish();
                tracing::subscriber::with_default(subscriber, emit);
            } else {
                let subscriber = builder
                    .fmt_fields(
                        tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
                            match field.name() {
                                "message" => write!(w, "{value:?}"),
                                name => write!(w, "{name}={value:?}"),
                            }
                        })
                        .delimited(" "),
                    )
                    .finish();
                tracing::subscriber::with_default(subscriber, emit);
            }
            let bytes = out.0.lock().unwrap().clone();
            String::from_utf8(bytes).unwrap()
        };
        use tracing_subscriber::field::MakeExt;
        let fast = render(true);
        assert_eq!(fast, render(false));
        assert!(fast.contains(
            "request_id=c8908cc3-1 method=GET version=Http11 status=200 bytes=18 delta=-3 \
             ok=true duration_ms=0.365483 outcome=\"client \\\"gone\\\"\""
        ));
    }

    #[test]
    fn the_timer_writes_rfc3339_with_microseconds() {
        let mut text = String::new();
        Rfc3339Micros
            .format_time(&mut Writer::new(&mut text))
            .unwrap();
        // 2026-11-24T11:39:35.491946Z
        assert_eq!(text.len(), 27, "{text}");
        assert!(text.ends_with('Z') && text.as_bytes()[10] == b'T' && text.as_bytes()[19] == b'.');
    }
}
