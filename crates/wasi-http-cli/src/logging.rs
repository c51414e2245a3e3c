//! Log setup: where lines go and how piped text lines are written.

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{FormatEvent, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

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
    let log = wasi_http_server::BatchedLog::new(std::io::stderr());
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
            .event_format(PlainLine(Rfc3339Micros))
            .fmt_fields(PlainFields)
            .init(),
    }
}

/// The default (`Full`) line without colour: `time level spans: target: fields`,
/// written with plain string writes instead of padded and styled `format!`s.
struct PlainLine<T>(T);

impl<S, N, T> FormatEvent<S, N> for PlainLine<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        // Records from the `log` crate carry their real level and target here.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        if self.0.format_time(&mut w).is_err() {
            w.write_str("<unknown time>")?;
        }
        w.write_str(match *meta.level() {
            Level::TRACE => " TRACE ",
            Level::DEBUG => " DEBUG ",
            Level::INFO => "  INFO ",
            Level::WARN => "  WARN ",
            Level::ERROR => " ERROR ",
        })?;
        if let Some(scope) = ctx.event_scope() {
            let mut seen = false;
            for span in scope.from_root() {
                w.write_str(span.metadata().name())?;
                seen = true;
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        w.write_char('{')?;
                        w.write_str(fields)?;
                        w.write_char('}')?;
                    }
                }
                w.write_char(':')?;
            }
            if seen {
                w.write_char(' ')?;
            }
        }
        w.write_str(meta.target())?;
        w.write_str(": ")?;
        ctx.format_fields(w.by_ref(), event)?;
        w.write_char('\n')
    }
}

/// UTC time with microseconds, as the default timer writes it
/// (`2026-11-24T11:39:35.491946Z`).
struct Rfc3339Micros;

impl FormatTime for Rfc3339Micros {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        write_rfc3339_micros(std::time::SystemTime::now(), w)
    }
}

/// humantime panics on a time before 1970 (a clock set wrong): that, like a year
/// past 9999, is an error here, which the line shows as `<unknown time>`.
fn write_rfc3339_micros(time: std::time::SystemTime, w: &mut Writer<'_>) -> std::fmt::Result {
    if time < std::time::UNIX_EPOCH {
        return Err(std::fmt::Error);
    }
    write!(w, "{}", humantime::format_rfc3339_micros(time))
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

    fn record_f64(&mut self, field: &Field, value: f64) {
        // Where both write plain decimals (Debug switches to exponents outside
        // this range), ryu writes the same shortest digits, several times faster.
        if (1e-4..1e15).contains(&value.abs()) {
            self.field(field, |w| {
                w.write_str(ryu::Buffer::new().format_finite(value))
            });
        } else {
            self.field(field, |w| write!(w, "{value:?}"));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w| w.write_str(if value { "true" } else { "false" }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::field::MakeExt;

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

    struct FixedTime;

    impl FormatTime for FixedTime {
        fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
            w.write_str("2026-11-24T11:39:35.491946Z")
        }
    }

    #[derive(Debug)]
    enum Version {
        Http11,
    }

    fn emit() {
        let id: Arc<str> = "c8908cc3-1".into();
        tracing::info!(
            target: "wasi_http::access",
            request_id = %id,
            method = %"GET",
            version = ?Version::Http11,
            status = 200u16,
            bytes = 18u64,
            delta = -3i64,
            ok = true,
            duration_ms = 0.365483f64,
            tiny = 0.00001f64,
            outcome = "client \"gone\"",
        );
        let outer = tracing::error_span!("outer", conn = 7u64, peer = %"127.0.0.1:5");
        outer.in_scope(|| {
            tracing::error_span!("inner")
                .in_scope(|| tracing::warn!(error = %"bad\nthing", "guest said {}", 42));
            tracing::error!(big = 1e300f64, "done");
            tracing::debug!("filtered out");
        });
    }

    /// What the default formatter (no colour) writes for `emit`, or ours.
    fn render(ours: bool) -> String {
        let sink = Sink::default();
        let out = sink.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(Level::INFO)
            .with_writer(move || sink.clone());
        if ours {
            let subscriber = builder
                .event_format(PlainLine(FixedTime))
                .fmt_fields(PlainFields)
                .finish();
            tracing::subscriber::with_default(subscriber, emit);
        } else {
            let subscriber = builder
                .with_timer(FixedTime)
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
    }

    /// The lines the fast formatter writes are the ones the default would.
    #[test]
    fn plain_lines_are_what_the_default_formatter_writes() {
        let ours = render(true);
        assert_eq!(ours, render(false));
        assert!(ours.contains(
            "2026-11-24T11:39:35.491946Z  INFO wasi_http::access: request_id=c8908cc3-1 \
             method=GET version=Http11 status=200 bytes=18 delta=-3 ok=true \
             duration_ms=0.365483 tiny=1e-5 outcome=\"client \\\"gone\\\"\"\n"
        ));
        assert!(ours.contains(
            "  WARN outer{conn=7 peer=127.0.0.1:5}:inner: wasi_http::logging::tests: \
             guest said 42 error=bad\nthing\n"
        ));
        assert!(!ours.contains("filtered out"));
    }

    /// Durations are written as `Debug` writes them.
    #[test]
    fn floats_are_written_as_debug_writes_them() {
        for value in [
            0.365483,
            1.0,
            12.5,
            0.0001,
            0.000123,
            123456.789,
            1e14 + 0.5,
            999.999,
            0.1 + 0.2,
            1.0 / 3.0,
            2e-5,
            5e15,
            -0.25,
        ] {
            let mut ours = String::new();
            let field = tracing::field::FieldSet::new(
                &["duration_ms"],
                tracing::callsite::Identifier(&CALLSITE),
            );
            let mut visitor = PlainVisitor {
                writer: Writer::new(&mut ours),
                first: true,
                result: Ok(()),
            };
            visitor.record_f64(&field.field("duration_ms").unwrap(), value);
            assert_eq!(ours, format!("duration_ms={value:?}"));
        }
    }

    struct NoCallsite;
    static CALLSITE: NoCallsite = NoCallsite;
    impl tracing::callsite::Callsite for NoCallsite {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &tracing::Metadata<'_> {
            unreachable!("not registered")
        }
    }

    #[test]
    fn a_clock_before_1970_or_after_9999_is_an_error_not_a_panic() {
        use std::time::{Duration, UNIX_EPOCH};
        let mut text = String::new();
        for time in [
            UNIX_EPOCH - Duration::from_secs(1),
            UNIX_EPOCH + Duration::from_secs(253_402_300_800),
        ] {
            assert!(write_rfc3339_micros(time, &mut Writer::new(&mut text)).is_err());
        }
        write_rfc3339_micros(UNIX_EPOCH, &mut Writer::new(&mut text)).unwrap();
        assert_eq!(text, "1970-01-01T00:00:00.000000Z");
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
