//! A worker pool's labels (`sluice worker --labels web,eu`): the deployment groups its host is
//! in. Canonical when built: lowercase, sorted, each once, so that `Web` and `web ` name the
//! same group everywhere a label is compared.

use std::fmt;

/// At most this many labels per pool.
pub const MAX_LABELS: usize = 16;
/// At most this many characters per label.
pub const MAX_LABEL_CHARS: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(Vec<String>);

impl Labels {
    /// Reads a comma-separated list (spaces around each label are ignored; an empty list is no
    /// labels). A label is letters, digits, `-`, `_` and `.`, starting with a letter or digit.
    pub fn parse(text: &str) -> Result<Labels, String> {
        let mut labels = Vec::new();
        for raw in text.split(',') {
            let label = raw.trim();
            if label.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err("a label list has an empty label (two commas in a row?)".into());
            }
            let valid = label.chars().count() <= MAX_LABEL_CHARS
                && label.starts_with(|c: char| c.is_ascii_alphanumeric())
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid {
                return Err(format!(
                    "{label:?} is not a label: up to {MAX_LABEL_CHARS} letters, digits, '-', '_' or '.', starting with a letter or digit"
                ));
            }
            labels.push(label.to_ascii_lowercase());
        }
        labels.sort();
        labels.dedup();
        if labels.len() > MAX_LABELS {
            return Err(format!("at most {MAX_LABELS} labels"));
        }
        Ok(Labels(labels))
    }

    /// A deployment group's name: exactly one label, canonical.
    pub fn group(name: &str) -> Result<String, String> {
        match Labels::parse(name)?.0.as_slice() {
            [one] if !name.contains(',') => Ok(one.clone()),
            _ => Err("a deployment group is one worker label".into()),
        }
    }

    /// Labels as stored (already canonical); a stored value that is not a label is left out.
    pub fn from_stored(stored: Vec<String>) -> Labels {
        let mut labels: Vec<String> = stored
            .iter()
            .filter_map(|l| Labels::parse(l).ok())
            .flat_map(|l| l.0)
            .collect();
        labels.sort();
        labels.dedup();
        Labels(labels)
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the pool is in the group `name` (compared canonically).
    pub fn contains(&self, name: &str) -> bool {
        let name = name.trim().to_ascii_lowercase();
        self.0.contains(&name)
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_canonical_whatever_their_spelling() {
        let labels = Labels::parse(" Web, eu ,web,EU-west.1").unwrap();
        assert_eq!(labels.as_slice(), ["eu", "eu-west.1", "web"]);
        assert!(labels.contains("WEB") && labels.contains(" eu"));
        assert!(!labels.contains("we"));
        assert_eq!(Labels::parse("").unwrap(), Labels::default());
        assert_eq!(Labels::parse("  ").unwrap(), Labels::default());
        assert_eq!(
            Labels::from_stored(vec!["web".into(), "eu".into(), "bad label".into()]).to_string(),
            "eu,web"
        );
    }

    #[test]
    fn bad_labels_are_refused_with_the_reason() {
        for (text, expected) in [
            ("web,,eu", "empty label"),
            ("web,", "empty label"),
            ("bad label", "is not a label"),
            ("-web", "is not a label"),
            ("wéb", "is not a label"),
            (&"x".repeat(65), "is not a label"),
        ] {
            let err = Labels::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        let many: Vec<String> = (0..17).map(|i| format!("l{i}")).collect();
        assert!(
            Labels::parse(&many.join(","))
                .unwrap_err()
                .contains("at most 16")
        );
        assert_eq!(Labels::parse(&"x".repeat(64)).unwrap().as_slice().len(), 1);
    }
}
