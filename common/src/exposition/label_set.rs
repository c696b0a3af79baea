//! The label set both daemons build their series' labels in.

use std::fmt::Write as _;

/// A label set rendered as it is built: `{name="value",...` without the
/// closing brace, so that a longer set is a copy and a push, not a new
/// rendering (the exporter's label sets are the main cost of its
/// encoding). The IPVS labels of a service and a real server are added by
/// [`crate::labels`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSet(String);

impl LabelSet {
    /// An empty label set with room for a real server's labels.
    pub fn new() -> Self {
        LabelSet(String::with_capacity(256))
    }

    /// This set and one more label, a value that needs no escaping.
    pub fn with(&self, name: &str, value: impl std::fmt::Display) -> Self {
        let mut labels = self.clone();
        labels.add(name, value);
        labels
    }

    #[inline]
    fn start(&mut self, name: &str) {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
        self.0.push_str(name);
        self.0.push_str("=\"");
    }

    /// A value that needs no escaping: numbers, addresses, fixed names.
    #[inline]
    pub fn add(&mut self, name: &str, value: impl std::fmt::Display) {
        self.start(name);
        let _ = write!(self.0, "{value}");
        self.0.push('"');
    }

    /// A value from the outside (a path, a scheduler name, a state name),
    /// escaped as the exposition formats quote it.
    pub fn add_escaped(&mut self, name: &str, value: &str) {
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
    pub fn closed(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        let mut text = String::with_capacity(self.0.len() + 1);
        text.push_str(&self.0);
        text.push('}');
        text
    }

    /// The labels, `name="value"` joined by commas, without the braces.
    pub(super) fn inner(&self) -> &str {
        self.0.get(1..).unwrap_or_default()
    }
}
