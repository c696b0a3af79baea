//! Reading YAML config files (the checker's, `--web.config.file`): the one
//! place that knows serde_yaml, so both daemons read YAML alike and report
//! its errors alike ([`ConfigError`] with file, line and column).
//!
//! A key given twice in one mapping is refused where the second stands.
//! serde's own check reports it at the start of the mapping (for the top
//! level, the file's first line), which in a long file says little, and
//! only for the mappings read into structs.

use std::fmt;
use std::path::Path;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess,
    Visitor,
};

use crate::ConfigError;

/// `text`, the contents of `file`, read as a `T`.
pub fn from_str<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, ConfigError> {
    refuse_repeated_keys(file, text)?;
    serde_yaml::from_str(text).map_err(|e| error(file, text, &e))
}

/// serde_yaml's error as a [`ConfigError`], its two limits said in words
/// a user can act on.
fn error(file: &Path, text: &str, error: &serde_yaml::Error) -> ConfigError {
    let mut error = ConfigError::yaml(file, text, error);
    let limit = match error.message.as_str() {
        "repetition limit exceeded" => {
            Some("aliases (*name) expand to too many values: refused, as a file that makes the reader build millions of nodes (a \"billion laughs\") would be")
        }
        "recursion limit exceeded" => Some("nested too deeply: refused"),
        _ => None,
    };
    if let Some(message) = limit {
        error.message = message.to_owned();
    }
    error
}

/// `text`, the contents of `file`, read with `seed` (for a reader that
/// carries context). Its keys are not checked again: call
/// [`refuse_repeated_keys`] once per text first.
pub fn from_str_seed<'de, S: DeserializeSeed<'de>>(
    file: &Path,
    text: &'de str,
    seed: S,
) -> Result<S::Value, ConfigError> {
    seed.deserialize(serde_yaml::Deserializer::from_str(text))
        .map_err(|e| error(file, text, &e))
}

/// Refuses a key given twice in one mapping anywhere in `text`, at the
/// place of the second.
pub fn refuse_repeated_keys(file: &Path, text: &str) -> Result<(), ConfigError> {
    UniqueKeys
        .deserialize(serde_yaml::Deserializer::from_str(text))
        .map_err(|e| error(file, text, &e))
}

/// A walk over the whole document that refuses a key given twice in one
/// mapping, at the place of the second.
struct UniqueKeys;

impl<'de> DeserializeSeed<'de> for UniqueKeys {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("YAML")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged value (`!tag x`): its value is walked; the other passes
        // judge the tag.
        let ((), variant) = data.variant_seed(IgnoredKey)?;
        de::VariantAccess::newtype_variant_seed(variant, self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(UniqueKeys)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = Vec::new();
        while map.next_key_seed(Key(&mut seen))?.is_some() {
            map.next_value_seed(UniqueKeys)?;
        }
        Ok(())
    }
}

/// A mapping's key, refused if it is one of `seen`, else added to them.
/// Keys that are not text (a list as a key) are left to the other passes.
struct Key<'a>(&'a mut Vec<String>);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<(), E> {
        if self.0.iter().any(|k| k == key) {
            return Err(E::custom(format_args!(
                "`{key}` is given twice in the same mapping"
            )));
        }
        self.0.push(key.to_owned());
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.visit_str(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.visit_str(&v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.visit_str(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.visit_str(&v.to_string())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        UniqueKeys.visit_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        UniqueKeys.visit_map(map)
    }
}

/// A tag's name, not judged here.
struct IgnoredKey;

impl<'de> DeserializeSeed<'de> for IgnoredKey {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_identifier(IgnoredAny).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        refuse_repeated_keys(Path::new("c.yml"), text)
            .expect_err("a repeated key")
            .to_string()
    }

    #[test]
    fn a_repeated_key_is_refused_where_it_stands_at_any_depth() {
        assert_eq!(
            error("a: 1\nb: 2\na: 3\n"),
            "c.yml:3:1: `a` is given twice in the same mapping"
        );
        assert_eq!(
            error("list:\n  - {x: 1, y: 2}\n  - x: 1\n    x: 2\n"),
            "c.yml:4:5: list[1]: `x` is given twice in the same mapping"
        );
        assert_eq!(
            error("a:\n  1: x\n  1: y\n"),
            "c.yml:3:3: a: `1` is given twice in the same mapping"
        );
    }

    #[test]
    fn an_alias_bomb_and_deep_nesting_are_refused_in_words() {
        let mut bomb = vec![r#"a: &a ["x","x","x","x","x","x","x","x","x","x"]"#.to_owned()];
        for (name, prev) in "bcdefghi".chars().zip("abcdefgh".chars()) {
            bomb.push(format!(
                "{name}: &{name} [{}]",
                vec![format!("*{prev}"); 10].join(",")
            ));
        }
        let error = refuse_repeated_keys(Path::new("c.yml"), &bomb.join("\n"))
            .expect_err("a bomb")
            .to_string();
        assert!(
            error.starts_with("c.yml: aliases (*name) expand to too many values: refused"),
            "{error}"
        );
        let deep = format!("{}1{}", "[".repeat(1000), "]".repeat(1000));
        let error = refuse_repeated_keys(Path::new("c.yml"), &deep)
            .expect_err("too deep")
            .to_string();
        assert!(error.contains("nested too deeply: refused"), "{error}");
    }

    #[test]
    fn the_same_key_in_different_mappings_is_fine() {
        refuse_repeated_keys(
            Path::new("c.yml"),
            "a: {x: 1}\nb: {x: 1}\nc: [{x: 1}, {x: 2}]\nd: !tag {x: 1}\n",
        )
        .expect("no key repeated in one mapping");
    }
}
