//! Validated names of users, groups and policies.

use std::fmt;

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr, $allowed:expr, $allowed_text:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// Parses a name, saying what is wrong with it.
            pub fn parse(raw: &str) -> Result<Self, String> {
                let count = raw.chars().count();
                if count == 0 {
                    return Err(format!("{} must not be empty", $what));
                }
                if count > $max {
                    return Err(format!("{} must be at most {} characters", $what, $max));
                }
                if !raw.chars().all($allowed) {
                    return Err(format!("{} may contain only {}", $what, $allowed_text));
                }
                Ok(Self(raw.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

fn user_or_group_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-')
}

fn policy_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '=' | ',' | '.' | '@' | '_' | '-')
}

name_type!(
    /// A user name: 1-64 of `A-Za-z0-9._@-`, unique regardless of case.
    UserName, "a user name", 64, user_or_group_char, "letters, digits and . _ @ -"
);
name_type!(
    /// A group name: 1-64 of `A-Za-z0-9._@-`, unique regardless of case.
    GroupName, "a group name", 64, user_or_group_char, "letters, digits and . _ @ -"
);
name_type!(
    /// A policy name: 1-128 of `A-Za-z0-9+=,.@_-` (IAM's rule), unique regardless of case.
    PolicyName, "a policy name", 128, policy_char, "letters, digits and + = , . @ _ -"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        assert!(UserName::parse("alice").is_ok());
        assert!(UserName::parse("ci.bot@example-1_x").is_ok());
        assert!(UserName::parse(&"a".repeat(64)).is_ok());
        assert!(
            UserName::parse(&"a".repeat(65))
                .unwrap_err()
                .contains("at most 64")
        );
        assert!(UserName::parse("").unwrap_err().contains("empty"));
        assert!(
            UserName::parse("al ice")
                .unwrap_err()
                .contains("only letters")
        );
        assert!(UserName::parse("<script>").is_err());
        assert!(UserName::parse("élise").is_err());
    }

    #[test]
    fn policy_names() {
        assert!(PolicyName::parse("Deploy+Prod=1,a.b@c_d-e").is_ok());
        assert!(PolicyName::parse("has/slash").is_err());
        assert!(PolicyName::parse(&"p".repeat(129)).is_err());
    }
}
