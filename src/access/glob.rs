//! IAM-style wildcard matching: `*` matches any run of characters (including none, and across `/`
//! and `:`), `?` matches exactly one character. Everything else matches itself.

/// A compiled pattern. Patterns without wildcards compare as plain strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    literal: Option<String>,
}

impl Glob {
    /// Compiles `pattern` as written (callers normalise case first where matching is
    /// case-insensitive).
    pub fn new(pattern: &str) -> Self {
        let has_wildcard = pattern.contains(['*', '?']);
        Self {
            pattern: pattern.to_string(),
            literal: (!has_wildcard).then(|| pattern.to_string()),
        }
    }

    /// Whether the pattern matches every string (`*`, `**`, …).
    pub fn matches_everything(&self) -> bool {
        !self.pattern.is_empty() && self.pattern.bytes().all(|c| c == b'*')
    }

    /// The pattern text when it has no wildcard.
    pub fn literal(&self) -> Option<&str> {
        self.literal.as_deref()
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        if let Some(literal) = &self.literal {
            return literal == text;
        }
        if self.pattern.is_ascii() && text.is_ascii() {
            // The common case (ARNs and action names are ASCII): no allocation.
            matches_slice(self.pattern.as_bytes(), text.as_bytes(), b'*', b'?')
        } else {
            // `?` is one character, not one byte.
            let pattern: Vec<char> = self.pattern.chars().collect();
            let text: Vec<char> = text.chars().collect();
            matches_slice(&pattern, &text, '*', '?')
        }
    }
}

/// The classic wildcard match with a single backtracking point: on a mismatch after a `*`, retry
/// with the star absorbing one more element. Linear in practice, O(n·m) at worst.
fn matches_slice<T: Copy + PartialEq>(pattern: &[T], text: &[T], any_run: T, any_one: T) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(&c) if c == any_run => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == any_one || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == any_run)
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn wildcard_table() {
        let cases = [
            ("*", "", true),
            ("*", "anything/at:all", true),
            ("Get*", "GetPipeline", true),
            ("Get*", "getPipeline", false),
            ("Get*", "ListPipelines", false),
            ("*Pipeline", "GetPipeline", true),
            ("*Pipeline", "GetPipelines", false),
            ("Get?ipeline", "GetPipeline", true),
            ("Get?ipeline", "GetPPipeline", false),
            ("web-app/*", "web-app/Prod/ReleaseGate", true),
            ("web-app/*/ReleaseGate", "web-app/Prod/ReleaseGate", true),
            ("web-app/*/ReleaseGate", "web-app/Prod/Other", false),
            ("web-app", "web-app/Prod", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("a**c", "ac", true),
            ("?", "", false),
            ("", "", true),
            ("", "x", false),
            ("é*", "éclair", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                Glob::new(pattern).matches(text),
                expected,
                "{pattern:?} vs {text:?}"
            );
        }
    }

    #[test]
    fn literal_and_everything() {
        assert_eq!(Glob::new("GetPipeline").literal(), Some("GetPipeline"));
        assert_eq!(Glob::new("Get*").literal(), None);
        assert!(Glob::new("*").matches_everything());
        assert!(Glob::new("**").matches_everything());
        assert!(!Glob::new("*a").matches_everything());
        assert!(!Glob::new("").matches_everything());
    }
}
