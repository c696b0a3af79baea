//! What `ipvs-exporter` and `ipvs-checker` share as Prometheus daemons,
//! beside the HTTP side (`ipvs-web`), as the Go exporters share
//! prometheus/common: one copy of each rule, so the two cannot drift.
//!
//! - [`duration`]: Prometheus' duration grammar (`1m30s`, `500ms`), for
//!   flags and config files alike;
//! - [`config_error`]: a config file error that names file, line and
//!   column, for the checker's config and `--web.config.file`;
//! - [`open_files`]: the open-files limit raised at start;
//! - [`yaml`]: reading a YAML config file, a key given twice refused
//!   where it stands;
//! - [`labels`]: the labels that name a virtual service and a real server
//!   in both daemons' series;
//! - [`exposition`]: the one writer of the Prometheus text format and
//!   OpenMetrics, label sets included.

#![warn(missing_docs)]

pub mod config_error;
pub mod duration;
pub mod exposition;
pub mod labels;
pub mod open_files;
pub mod yaml;

pub use config_error::ConfigError;
pub use duration::{parse_duration, parse_positive_duration};
pub use exposition::LabelSet;
pub use open_files::raise_open_files_limit;
