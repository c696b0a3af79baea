//! Logging as Prometheus exporters do it: `--log.level=trace|debug|info|warn|error`
//! and `--log.format=logfmt|json`, to standard error.
//!
//! logfmt lines look like
//! `ts=2025-01-01T12:00:00.000000Z level=info target=ipvs_exporter msg="listening" address=[::]:10310`.

use std::fmt;
use std::str::FromStr;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// `--log.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Every event, one per probe or request too: for chasing a bug.
    Trace,
    /// Everything an operator may need, for troubleshooting.
    Debug,
    /// The default: start, stop, state changes.
    Info,
    /// Things an operator should look at.
    Warn,
    /// Failures only.
    Error,
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "trace" => Ok(LogLevel::Trace),
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" => Ok(LogLevel::Warn),
            "error" => Ok(LogLevel::Error),
            other => Err(format!(
                "unknown log level {other:?} (use trace, debug, info, warn or error)"
            )),
        }
    }
}

impl From<LogLevel> for Level {
    fn from(level: LogLevel) -> Level {
        match level {
            LogLevel::Trace => Level::TRACE,
            LogLevel::Debug => Level::DEBUG,
            LogLevel::Info => Level::INFO,
            LogLevel::Warn => Level::WARN,
            LogLevel::Error => Level::ERROR,
        }
    }
}

/// `--log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `key=value` pairs, one event a line (the default).
    Logfmt,
    /// One JSON object a line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "logfmt" => Ok(LogFormat::Logfmt),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?} (use logfmt or json)")),
        }
    }
}

/// Installs the global subscriber; a second call changes nothing (and
/// says so in its result).
pub fn init(level: LogLevel, format: LogFormat) -> Result<(), String> {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(directives(level)))
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Logfmt => builder.event_format(Logfmt).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| format!("cannot set up logging: {e}"))
}

/// The project's crates log at `level`; the libraries under them (rustls'
/// handshake steps, netlink's messages, arriving through the `log` bridge)
/// only from `warn` up, unless `level` is `trace`: at `debug`, one line
/// per probe is useful, ten lines of TLS internals per probe are not.
fn directives(level: LogLevel) -> String {
    let ours = Level::from(level).as_str().to_ascii_lowercase();
    let libraries = match level {
        LogLevel::Trace => return ours,
        LogLevel::Error => "error",
        _ => "warn",
    };
    format!("{libraries},ipvs={ours},ipvs_web={ours},ipvs_exporter={ours},ipvs_checker={ours}")
}

/// The logfmt event format.
#[derive(Debug, Clone, Copy, Default)]
pub struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut ts = String::new();
        SystemTime.format_time(&mut Writer::new(&mut ts))?;
        let meta = event.metadata();
        write!(
            writer,
            "ts={} level={} target={}",
            ts,
            meta.level().as_str().to_ascii_lowercase(),
            meta.target()
        )?;
        let mut visitor = LogfmtFields::default();
        event.record(&mut visitor);
        writeln!(writer, "{}", visitor.out)
    }
}

/// Collects an event's fields as ` key=value`, `message` first as `msg`.
#[derive(Default)]
struct LogfmtFields {
    out: String,
}

impl LogfmtFields {
    fn push(&mut self, field: &Field, value: &str) {
        let key = match field.name() {
            "message" => "msg",
            name => name,
        };
        let insert_at_front = key == "msg";
        let mut pair = String::with_capacity(key.len() + value.len() + 3);
        pair.push(' ');
        pair.push_str(key);
        pair.push('=');
        quote_into(&mut pair, value);
        if insert_at_front {
            self.out.insert_str(0, &pair);
        } else {
            self.out.push_str(&pair);
        }
    }
}

impl Visit for LogfmtFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, &format!("{value:?}"));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // The whole chain, as the binaries print errors.
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        self.push(field, &text);
    }
}

/// A logfmt value: bare when it has no space, quote, `=` or control
/// character, otherwise quoted with `\"`, `\\` and `\n` escaped.
fn quote_into(out: &mut String, value: &str) {
    let bare = !value.is_empty()
        && !value
            .chars()
            .any(|c| c == ' ' || c == '"' || c == '=' || c == '\\' || c.is_control());
    if bare {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_only_when_needed() {
        let quoted = |v: &str| {
            let mut s = String::new();
            quote_into(&mut s, v);
            s
        };
        assert_eq!(quoted("plain"), "plain");
        assert_eq!(quoted("[::]:10310"), "[::]:10310");
        assert_eq!(quoted(""), "\"\"");
        assert_eq!(quoted("two words"), "\"two words\"");
        assert_eq!(quoted("a=b"), "\"a=b\"");
        assert_eq!(quoted("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
    }

    #[test]
    fn libraries_log_warnings_unless_tracing() {
        assert_eq!(
            directives(LogLevel::Debug),
            "warn,ipvs=debug,ipvs_web=debug,ipvs_exporter=debug,ipvs_checker=debug"
        );
        assert_eq!(
            directives(LogLevel::Error),
            "error,ipvs=error,ipvs_web=error,ipvs_exporter=error,ipvs_checker=error"
        );
        assert_eq!(directives(LogLevel::Trace), "trace");
        for level in [LogLevel::Info, LogLevel::Debug, LogLevel::Trace] {
            EnvFilter::try_new(directives(level)).expect("valid directives");
        }
    }

    #[test]
    fn flags_parse() {
        assert_eq!("warn".parse::<LogLevel>(), Ok(LogLevel::Warn));
        assert_eq!("trace".parse::<LogLevel>(), Ok(LogLevel::Trace));
        assert_eq!(
            "loud".parse::<LogLevel>(),
            Err("unknown log level \"loud\" (use trace, debug, info, warn or error)".into())
        );
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!(
            "xml".parse::<LogFormat>(),
            Err("unknown log format \"xml\" (use logfmt or json)".into())
        );
    }

    #[test]
    fn logfmt_lines() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(Logfmt)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let error = std::io::Error::other("boom");
            tracing::warn!(address = "[::]:1", %error, "cannot listen");
        });
        let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf8");
        let (ts, rest) = text.split_once(' ').expect("fields");
        assert!(ts.starts_with("ts=") && ts.ends_with('Z'), "{ts}");
        assert_eq!(
            rest,
            "level=warn target=ipvs_web::logging::tests msg=\"cannot listen\" address=[::]:1 error=boom\n"
        );
    }
}
