//! Reading a config file: two passes over the text ([`ipvs_common::yaml`]).
//!
//! The first reads only `mode` and `defaults` ([`raw::Preamble`]); the
//! second everything else, with those two known, so that each service is
//! validated against what it inherits wherever `defaults` stands in the
//! file. The second pass hands that [`Context`] down to each service with
//! serde's `DeserializeSeed` ([`FileSeed`], [`ServicesSeed`], then
//! [`ServiceSeed`]), so nothing is global and each service is validated
//! inside its own deserialization, where its errors get its place.

use std::fmt;
use std::path::Path;

use ipvs_common::{yaml, ConfigError};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::scalars::Dur;
use super::service::{Context, ServiceSeed};
use super::{raw, vip};
use super::{
    Config, Mode, OutOfBand, VirtualService, DEFAULT_DRAIN_FILE, DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_MAX_RUNNING_HOOKS,
};

/// Both passes over `text`, the contents of `file`; relative file names
/// resolve against `base`.
pub(super) fn parse(text: &str, file: &Path, base: &Path) -> Result<Config, ConfigError> {
    if text.trim().is_empty() {
        return Err(ConfigError::new(
            file,
            "the file is empty: it needs at least `services:`",
        ));
    }
    yaml::refuse_repeated_keys(file, text)?;
    let preamble: raw::Preamble = yaml::from_str(file, text)?;
    let mode = preamble.mode.unwrap_or(Mode::Weights);
    let mut context = Context::new(base, mode, preamble.defaults)
        .map_err(|e| ConfigError::new(file, format!("defaults: {e}")))?;
    context
        .build_default_check()
        .map_err(|e| ConfigError::new(file, e))?;
    context
        .build_default_hooks()
        .map_err(|e| ConfigError::new(file, e))?;
    let body = yaml::from_str_seed(file, text, FileSeed(&mut context))?;
    let mut services = body.services;
    if services.is_empty() {
        return Err(ConfigError::new(
            file,
            "services: the list is empty: nothing to check",
        ));
    }
    let state_file = match (mode, body.state_file) {
        (Mode::Managed, None) => {
            return Err(ConfigError::new(
                file,
                "mode: managed needs state_file: the file where the checker records \
                 the services and real servers it created, the only ones it deletes",
            ))
        }
        (Mode::Managed, Some(path)) if path.trim().is_empty() => {
            return Err(ConfigError::new(file, "state_file: must not be empty"))
        }
        (Mode::Managed, Some(path)) => Some(base.join(path)),
        (Mode::Weights, Some(_)) => {
            return Err(ConfigError::new(
                file,
                "state_file is only used in mode: managed (weights mode creates and \
                 deletes nothing)",
            ))
        }
        (Mode::Weights, None) => None,
    };
    if mode == Mode::Weights && body.drain_timeout.is_some() {
        return Err(ConfigError::new(
            file,
            "drain_timeout is only used in mode: managed (weights mode deletes no real server)",
        ));
    }
    let max_running_hooks = match body.max_running_hooks {
        None => DEFAULT_MAX_RUNNING_HOOKS,
        Some(0) => {
            return Err(ConfigError::new(
                file,
                "max_running_hooks must be at least 1",
            ))
        }
        Some(n) => n,
    };
    let path = |key: &str, value: Option<String>| match value {
        Some(path) if path.trim().is_empty() => {
            Err(ConfigError::new(file, format!("{key}: must not be empty")))
        }
        Some(path) => Ok(Some(base.join(path))),
        None => Ok(None),
    };
    let vip_probes =
        vip::vip_probes(body.vip_probes, base).map_err(|e| ConfigError::new(file, e))?;
    let probe_services =
        vip::assign_marks(&mut services, &vip_probes).map_err(|e| ConfigError::new(file, e))?;
    Ok(Config {
        mode,
        state_file,
        set_expire_quiescent_template: body.set_expire_quiescent_template.unwrap_or(false),
        drain_file: path("drain_file", body.drain_file)?
            .unwrap_or_else(|| DEFAULT_DRAIN_FILE.into()),
        out_of_band: body.out_of_band.unwrap_or_default(),
        maintenance_dir: path("maintenance_dir", body.maintenance_dir)?,
        drain_timeout: body.drain_timeout.map_or(DEFAULT_DRAIN_TIMEOUT, |d| d.0),
        hooks: context.default_hooks.clone(),
        max_running_hooks,
        services,
        vip_probes,
        probe_services,
    })
}

/// The keys of the file, in the order an unknown key's error lists them.
const FIELDS: &[&str] = &[
    "mode",
    "defaults",
    "state_file",
    "set_expire_quiescent_template",
    "drain_file",
    "out_of_band",
    "maintenance_dir",
    "drain_timeout",
    "max_running_hooks",
    "vip_probes",
    "services",
];

/// What the second pass reads (`mode` and `defaults` were the first's).
#[derive(Debug, Default)]
struct Body {
    state_file: Option<String>,
    set_expire_quiescent_template: Option<bool>,
    drain_file: Option<String>,
    out_of_band: Option<OutOfBand>,
    maintenance_dir: Option<String>,
    drain_timeout: Option<Dur>,
    max_running_hooks: Option<usize>,
    vip_probes: Option<raw::VipProbes>,
    services: Vec<VirtualService>,
}

/// The top-level mapping, unknown keys refused; `services` validated in
/// the context.
struct FileSeed<'a>(&'a mut Context);

impl<'de> DeserializeSeed<'de> for FileSeed<'_> {
    type Value = Body;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Body, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FileSeed<'_> {
    type Value = Body;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Body, A::Error> {
        let mut body = Body::default();
        let mut seen = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let Some(field) = FIELDS.iter().find(|f| **f == key) else {
                return Err(de::Error::unknown_field(&key, FIELDS));
            };
            // (A key given twice was refused by `UniqueKeys` already.)
            seen.push(*field);
            match *field {
                "state_file" => body.state_file = map.next_value()?,
                "set_expire_quiescent_template" => {
                    body.set_expire_quiescent_template = map.next_value()?
                }
                "drain_file" => body.drain_file = map.next_value()?,
                "out_of_band" => body.out_of_band = map.next_value()?,
                "maintenance_dir" => body.maintenance_dir = map.next_value()?,
                "drain_timeout" => body.drain_timeout = map.next_value()?,
                "max_running_hooks" => body.max_running_hooks = map.next_value()?,
                "vip_probes" => body.vip_probes = map.next_value()?,
                "services" => body.services = map.next_value_seed(ServicesSeed(&mut *self.0))?,
                // Read and validated by the first pass.
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !seen.contains(&"services") {
            return Err(de::Error::missing_field("services"));
        }
        Ok(body)
    }
}

/// The `services:` list, each entry validated in the context.
struct ServicesSeed<'a>(&'a mut Context);

impl<'de> DeserializeSeed<'de> for ServicesSeed<'_> {
    type Value = Vec<VirtualService>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ServicesSeed<'_> {
    type Value = Vec<VirtualService>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of services")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut services = Vec::new();
        while let Some(service) = seq.next_element_seed(ServiceSeed(&mut *self.0))? {
            services.push(service);
        }
        Ok(services)
    }
}
