//! A metric family: its header in either format and its sample lines,
//! histograms included.

use std::fmt::Write as _;

use super::out::{push_decimal, CHUNK};
use super::{Format, LabelSet, Out};

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A counter: its samples' name ends in `_total`.
    Counter,
    /// A gauge.
    Gauge,
    /// A gauge of value 1 whose labels are the information: `info` in
    /// OpenMetrics (its samples' name ends in `_info`), a gauge in the
    /// text format.
    Info,
    /// A histogram: `_sum`, `_count` and cumulative `_bucket` samples.
    Histogram,
}

/// One metric family being built: its sample lines, already in their
/// final text (the same in both formats), so a sample costs no allocation
/// of its own.
#[derive(Debug)]
pub struct Family {
    /// The name of the samples (with `_total` for counters, `_info` for
    /// info metrics); a histogram's samples add `_sum`, `_count`, `_bucket`.
    name: &'static str,
    help: &'static str,
    kind: Kind,
    /// OpenMetrics' `# UNIT`, which the name ends with.
    unit: Option<&'static str>,
    /// Whether the header is written when there is no sample.
    described_when_empty: bool,
    /// Whether the header went out already (see [`Family::spill_into`]).
    header_written: bool,
    lines: String,
    /// Each `_bucket` line's start up to its `le` label, for the bounds
    /// last pushed: made once per family, not once per line, as a
    /// histogram family of thousands of real servers has tens of
    /// thousands of bucket lines and formatting a float is most of one.
    buckets: Option<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    bounds: &'static [f64],
    /// `name_bucket{le="bound"` per bound, then `le="+Inf"`.
    starts: Vec<String>,
}

impl Family {
    /// A family of samples named `name`, without samples yet.
    pub fn new(name: &'static str, kind: Kind, help: &'static str) -> Self {
        Family {
            name,
            help,
            kind,
            unit: None,
            described_when_empty: false,
            header_written: false,
            lines: String::new(),
            buckets: None,
        }
    }

    /// With OpenMetrics' `# UNIT` (`seconds`, `bytes`): the name ends in
    /// `_` and the unit.
    pub fn with_unit(mut self, unit: &'static str) -> Self {
        self.unit = Some(unit);
        self
    }

    /// Written with its header even when it has no sample, so a scrape
    /// names every family the daemon has.
    pub fn described_when_empty(mut self) -> Self {
        self.described_when_empty = true;
        self
    }

    /// The name of the samples.
    #[inline]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// A sample labelled `labels`.
    pub fn push(&mut self, labels: &LabelSet, value: impl std::fmt::Display) {
        self.push_rendered(&labels.closed(), value);
    }

    /// A sample whose label set is already rendered (`{...}` or empty).
    pub fn push_rendered(&mut self, labels: &str, value: impl std::fmt::Display) {
        self.lines.push_str(self.name);
        self.lines.push_str(labels);
        let _ = writeln!(self.lines, " {value}");
    }

    /// A histogram's samples labelled `labels`: `_sum`, `_count`, then a
    /// `_bucket` per bound with `le` first (as prometheus-client wrote
    /// them, so the series keep their identity), the bounds as Rust's
    /// `{:?}` writes a float (`1.0`, `0.0025`) and the last `+Inf`.
    pub fn push_histogram(&mut self, labels: &LabelSet, histogram: &Histogram) {
        let closed = labels.closed();
        let name = self.name;
        let _ = writeln!(self.lines, "{name}_sum{closed} {:?}", histogram.sum);
        self.lines.push_str(name);
        self.lines.push_str("_count");
        self.lines.push_str(&closed);
        self.lines.push(' ');
        push_decimal(&mut self.lines, histogram.count);
        self.lines.push('\n');
        let rest = labels.inner();
        let separator = if rest.is_empty() { "" } else { "," };
        let buckets = match &mut self.buckets {
            Some(made) if std::ptr::eq(made.bounds, histogram.bounds) => made,
            other => other.insert(Buckets::new(name, histogram.bounds)),
        };
        let mut cumulative = 0u64;
        for (start, count) in buckets.starts.iter().zip(&histogram.counts) {
            cumulative = cumulative.saturating_add(*count);
            self.lines.push_str(start);
            self.lines.push_str(separator);
            self.lines.push_str(rest);
            self.lines.push_str("} ");
            push_decimal(&mut self.lines, cumulative);
            self.lines.push('\n');
        }
    }

    /// Appends the family (header and samples) to `out`, if it has samples
    /// or is [described when empty](Family::described_when_empty).
    pub fn encode(&self, format: Format, out: &mut Out<'_>) {
        if !self.header_written {
            if self.lines.is_empty() && !self.described_when_empty {
                return;
            }
            self.header(format, out);
        }
        out.buf.push_str(&self.lines);
        out.spill();
    }

    /// Hands the samples so far to `out` once they make a chunk, the
    /// header first: a family of many samples, written as it is built,
    /// then never exists whole (at 2,000 real servers a histogram family
    /// is megabytes).
    pub fn spill_into(&mut self, format: Format, out: &mut Out<'_>) {
        if self.lines.len() >= CHUNK {
            self.encode(format, out);
            self.header_written = true;
            self.lines.clear();
        }
    }

    /// Appends `# HELP`, `# TYPE` and (OpenMetrics) `# UNIT`.
    pub fn header(&self, format: Format, out: &mut Out<'_>) {
        let out = &mut out.buf;
        // OpenMetrics names the family without the sample suffix.
        let family_name = match (format, self.kind) {
            (Format::OpenMetrics, Kind::Counter) => self.name.trim_end_matches("_total"),
            (Format::OpenMetrics, Kind::Info) => self.name.trim_end_matches("_info"),
            _ => self.name,
        };
        let kind = match (format, self.kind) {
            (_, Kind::Counter) => "counter",
            (_, Kind::Histogram) => "histogram",
            (Format::OpenMetrics, Kind::Info) => "info",
            _ => "gauge",
        };
        let _ = writeln!(out, "# HELP {family_name} {}", self.help);
        let _ = writeln!(out, "# TYPE {family_name} {kind}");
        if let (Format::OpenMetrics, Some(unit)) = (format, self.unit) {
            let _ = writeln!(out, "# UNIT {family_name} {unit}");
        }
    }
}

impl Buckets {
    fn new(name: &str, bounds: &'static [f64]) -> Self {
        let starts = bounds
            .iter()
            .map(|bound| format!("{name}_bucket{{le=\"{bound:?}\""))
            .chain([format!("{name}_bucket{{le=\"+Inf\"")])
            .collect();
        Buckets { bounds, starts }
    }
}

/// A histogram of fixed bounds, as the `_bucket` samples count it: an
/// observation goes to the first bound at or above it (`+Inf` for the
/// rest, and for NaN).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative), the last for `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// No observation yet; `bounds` ascending, finite, `+Inf` implied.
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    /// Counts `value`.
    pub fn observe(&mut self, value: f64) {
        self.sum += value;
        self.count = self.count.saturating_add(1);
        let bucket = self
            .bounds
            .iter()
            .position(|bound| *bound >= value)
            .unwrap_or(self.bounds.len());
        if let Some(count) = self.counts.get_mut(bucket) {
            *count = count.saturating_add(1);
        }
    }

    /// The number of observations.
    pub fn count(&self) -> u64 {
        self.count
    }
}
