//! Input parsed into types that cannot hold invalid values ("parse, don't validate"): once
//! a handler has a [`NewUser`], nothing downstream checks the email or the name again.

mod display_name;
mod email_address;
mod new_user;

pub use display_name::DisplayName;
pub use email_address::EmailAddress;
pub use new_user::{InvalidField, NewUser};
