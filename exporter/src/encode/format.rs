//! The low-level writer of the exposition: the two formats' headers,
//! label sets rendered as they are built, sample lines, and the output
//! handed to the sink in pieces. Nothing here knows about IPVS.

use std::fmt::Write as _;
use std::io::Write;

/// The exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Text,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// OpenMetrics when the `Accept` header asks for it with a non-zero
    /// quality, the text format otherwise (as client_golang decides).
    pub fn negotiate(accept: Option<&str>) -> Format {
        if ipvs_web::pages::asks_openmetrics(accept) {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Counter,
    Gauge,
    /// A gauge of value 1 whose labels are the information; `info` in
    /// OpenMetrics, a gauge in the text format.
    Info,
}

/// One metric family being built: its sample lines, already in their
/// final text (the same in both formats), so a sample costs no
/// allocation of its own.
#[derive(Debug)]
pub(super) struct Family {
    /// The name of the samples (with `_total` for counters, `_info` for
    /// info metrics).
    pub(super) name: &'static str,
    help: &'static str,
    kind: Kind,
    lines: String,
}

impl Family {
    pub(super) fn new(name: &'static str, kind: Kind, help: &'static str) -> Self {
        Family {
            name,
            help,
            kind,
            lines: String::new(),
        }
    }

    /// A sample labelled `labels`.
    pub(super) fn push(&mut self, labels: &LabelText, value: impl std::fmt::Display) {
        self.push_rendered(&labels.closed(), value);
    }

    /// A sample whose label set is already rendered (`{...}` or empty).
    pub(super) fn push_rendered(&mut self, labels: &str, value: impl std::fmt::Display) {
        self.lines.push_str(self.name);
        self.lines.push_str(labels);
        let _ = writeln!(self.lines, " {value}");
    }

    /// Appends the family (header and samples) to `out`, if it has samples.
    pub(super) fn encode(&self, format: Format, out: &mut Out<'_>) {
        if self.lines.is_empty() {
            return;
        }
        self.header(format, &mut out.buf);
        out.buf.push_str(&self.lines);
        out.spill();
    }

    /// Appends `# HELP` and `# TYPE`.
    pub(super) fn header(&self, format: Format, out: &mut String) {
        // OpenMetrics names the family without the sample suffix.
        let family_name = match (format, self.kind) {
            (Format::OpenMetrics, Kind::Counter) => self.name.trim_end_matches("_total"),
            (Format::OpenMetrics, Kind::Info) => self.name.trim_end_matches("_info"),
            _ => self.name,
        };
        let kind = match (format, self.kind) {
            (_, Kind::Counter) => "counter",
            (Format::OpenMetrics, Kind::Info) => "info",
            _ => "gauge",
        };
        let _ = writeln!(out, "# HELP {family_name} {}", self.help);
        let _ = writeln!(out, "# TYPE {family_name} {kind}");
    }
}

/// A label set rendered as it is built: `{name="value",...` without the
/// closing brace, so that a longer set is a copy and a push, not a new
/// rendering (the table's label sets are the encoder's main cost).
#[derive(Debug, Clone, Default)]
pub(super) struct LabelText(String);

impl LabelText {
    /// An empty label set with room for a backend's labels.
    pub(super) fn new() -> Self {
        LabelText(String::with_capacity(256))
    }

    /// This set and one more label.
    pub(super) fn with(&self, name: &str, value: impl std::fmt::Display) -> Self {
        let mut labels = self.clone();
        labels.add(name, value);
        labels
    }

    fn start(&mut self, name: &str) {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
        self.0.push_str(name);
        self.0.push_str("=\"");
    }

    /// A value that needs no escaping: numbers, addresses, fixed names.
    pub(super) fn add(&mut self, name: &str, value: impl std::fmt::Display) {
        self.start(name);
        let _ = write!(self.0, "{value}");
        self.0.push('"');
    }

    /// A value from the outside (a path, a scheduler name, a state name),
    /// escaped as the exposition formats quote it.
    pub(super) fn add_escaped(&mut self, name: &str, value: &str) {
        self.start(name);
        for c in value.chars() {
            match c {
                '\\' => self.0.push_str("\\\\"),
                '"' => self.0.push_str("\\\""),
                '\n' => self.0.push_str("\\n"),
                c => self.0.push(c),
            }
        }
        self.0.push('"');
    }

    /// The label set as a sample line writes it: `{...}`, or nothing when
    /// there is no label.
    pub(super) fn closed(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        let mut text = String::with_capacity(self.0.len() + 1);
        text.push_str(&self.0);
        text.push('}');
        text
    }
}

/// The size of the pieces handed to the sink.
pub(super) const CHUNK: usize = 64 * 1024;

/// The exposition being written: a small buffer handed to the sink each
/// time it fills, so that a compressed exposition never exists whole
/// uncompressed.
pub(super) struct Out<'w> {
    pub(super) buf: String,
    sink: &'w mut dyn Write,
    error: Option<std::io::Error>,
}

impl<'w> Out<'w> {
    pub(super) fn new(sink: &'w mut dyn Write) -> Self {
        Out {
            buf: String::with_capacity(CHUNK + 4096),
            sink,
            error: None,
        }
    }

    /// Hands the buffer to the sink once it holds a chunk.
    pub(super) fn spill(&mut self) {
        if self.buf.len() >= CHUNK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.error.is_none() {
            if let Err(error) = self.sink.write_all(self.buf.as_bytes()) {
                self.error = Some(error);
            }
        }
        self.buf.clear();
    }

    /// Hands what is left to the sink; the first error the sink returned,
    /// if any (nothing more was written after it).
    pub(super) fn finish(mut self) -> std::io::Result<()> {
        self.flush();
        match self.error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Writes one sample line.
    pub(super) fn sample(&mut self, name: &str, labels: &str, value: u64) {
        self.buf.push_str(name);
        self.buf.push_str(labels);
        self.buf.push(' ');
        push_decimal(&mut self.buf, value);
        self.buf.push('\n');
        self.spill();
    }
}

impl std::fmt::Debug for Out<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Out")
            .field("buffered", &self.buf.len())
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// `value` in decimal, through itoa rather than `core::fmt`: every sample
/// of the table goes through here, and `fmt`'s general machinery (`write`,
/// `pad_integral`) would be much of a sample line's cost (figures in
/// lab/bench/README.md, encode-cost).
fn push_decimal(out: &mut String, value: u64) {
    out.push_str(itoa::Buffer::new().format(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_as_display_writes_them() {
        for value in [0, 7, 10, 99, 1_000_000, u64::from(u32::MAX) + 1, u64::MAX] {
            let mut out = String::from("x ");
            push_decimal(&mut out, value);
            assert_eq!(out, format!("x {value}"));
        }
    }

    #[test]
    fn label_values_from_outside_are_escaped() {
        let mut labels = LabelText::new();
        labels.add("port", 80);
        labels.add_escaped("netns", "/run/netns/a \"b\"\\c\nd");
        assert_eq!(
            labels.closed(),
            r#"{port="80",netns="/run/netns/a \"b\"\\c\nd"}"#
        );
        assert_eq!(LabelText::new().closed(), "");
    }
}
