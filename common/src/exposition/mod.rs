//! The one writer of the Prometheus exposition, for both daemons: the
//! text format 0.0.4 and OpenMetrics 1.0, negotiated from `Accept` as
//! client_golang does it.
//!
//! Both daemons write through these pieces, and nothing else writes an
//! exposition: [`Family`] (a metric family's `# HELP`, `# TYPE` and, in
//! OpenMetrics, `# UNIT`, and its sample lines, histograms included),
//! [`LabelSet`] (a label set rendered as it is built, so that a longer set
//! is a copy and a push), [`Out`] (the output, handed to the sink in
//! pieces of about 64 KiB, with `# EOF` at the end of OpenMetrics) and
//! [`Format`]. Each format is written straight from the daemon's values:
//! the text format is not OpenMetrics edited afterwards.
//!
//! Why this writer and not prometheus-client's encoder: prometheus-client
//! 0.25 writes only OpenMetrics, so a 0.0.4 answer was its text edited
//! line by line (counter families renamed, `# UNIT` and `# EOF` dropped);
//! and on the exporter's large tables this writer takes less time than
//! it and never holds the whole text (figures in `exporter/README.md`).
//! The checker's few hundred series cost little either way: one path for
//! both daemons is what matters there.
//!
//! Sample values are written as `Display` writes them (integers as
//! integers, floats without an exponent); histogram bounds as `{:?}`
//! writes a float (`1.0`), as prometheus-client wrote them.
//!
//! What differs between the formats is only in the headers and the end:
//! OpenMetrics names a counter family without its samples' `_total` and
//! an info family without `_info` (typed `info`; a gauge in 0.0.4), has
//! `# UNIT` where a family has a unit, and ends with `# EOF`. Sample lines
//! are the same in both.

mod family;
mod label_set;
mod out;

pub use family::{Family, Histogram, Kind};
pub use label_set::LabelSet;
pub use out::{into_text, Out};

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

    /// OpenMetrics when the `Accept` header lists it with a quality above
    /// 0, the text format otherwise (as client_golang decides).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let asks_openmetrics = accept.unwrap_or("").split(',').any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            let quality = parts
                .filter_map(|p| p.strip_prefix("q="))
                .filter_map(|q| q.parse::<f64>().ok())
                .next()
                .unwrap_or(1.0);
            media.eq_ignore_ascii_case("application/openmetrics-text") && quality > 0.0
        });
        if asks_openmetrics {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

#[cfg(test)]
mod tests;
