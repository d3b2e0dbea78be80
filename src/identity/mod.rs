//! Identity: validated names, passwords and their hashing, and the random secrets behind
//! sessions and API tokens.

mod names;
mod password;
mod tokens;

pub use names::{GroupName, PolicyName, UserName};
pub use password::{
    MAX_CHARS as PASSWORD_MAX_CHARS, MIN_CHARS as PASSWORD_MIN_CHARS, NewPassword, PasswordHasher,
};
pub use tokens::{API_TOKEN_PREFIX, Secret, looks_like_api_token, token_hash};
