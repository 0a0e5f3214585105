//! Passwords from files, for Docker and Kubernetes secrets.
//!
//! A secret in an environment variable shows in `docker inspect`, in `/proc/<pid>/environ`
//! and in every child process. Orchestrators mount secrets as files instead, so each URL
//! that carries a password (`AMQP_URL`, `DATABASE_URL`, `SMTP_URL`) has a companion
//! `…_PASSWORD_FILE`: the URL names host, user and database, the file holds the password,
//! and the password is put into the URL once, at start.

use std::path::{Path, PathBuf};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use url::Url;

/// Everything but RFC 3986's unreserved characters is percent-encoded in a password, `%`
/// included: `Url::set_password` keeps a `%` as it is (taking it for an escape already
/// made), so a password containing one would be read back as something else.
const PASSWORD: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A password file that could not be used, or a URL it could not be put into.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file is missing or unreadable.
    #[error("{variable}: cannot read {path}: {source}")]
    Unreadable {
        /// The variable that named the file, e.g. `AMQP_PASSWORD_FILE`.
        variable: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The URL the password belongs in has no host to carry a user and password. The URL
    /// itself is not repeated: it may hold a password of its own.
    #[error("{variable}: the URL it belongs to cannot carry a password (no host?)")]
    UnsuitableUrl {
        /// The variable that named the file.
        variable: &'static str,
    },
}

/// Configuration that may name password files: resolved once by
/// [`crate::config::parse`], so the rest of a service only ever sees complete URLs.
pub trait ResolveSecrets {
    /// Reads every password file that is set and puts each password into its URL.
    fn resolve_secrets(&mut self) -> Result<(), SecretError>;
}

/// Replaces the password in `url` with the content of `file`, if a file is given. One
/// trailing line break is dropped (`echo secret > file` writes one); anything else in the
/// file is the password, percent-encoded into the URL.
pub fn put_password_from_file(
    url: &mut String,
    file: Option<&Path>,
    variable: &'static str,
) -> Result<(), SecretError> {
    let Some(path) = file else {
        return Ok(());
    };
    let content = std::fs::read_to_string(path).map_err(|source| SecretError::Unreadable {
        variable,
        path: path.to_owned(),
        source,
    })?;
    let password = content
        .strip_suffix("\r\n")
        .or_else(|| content.strip_suffix('\n'))
        .unwrap_or(&content);
    let mut parsed = Url::parse(url).map_err(|_| SecretError::UnsuitableUrl { variable })?;
    let encoded = utf8_percent_encode(password, PASSWORD).to_string();
    parsed
        .set_password(Some(&encoded))
        .map_err(|()| SecretError::UnsuitableUrl { variable })?;
    *url = parsed.into();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary file holding `content`, named per test so parallel tests never share one.
    fn file_with(test: &str, content: &str) -> PathBuf {
        let name = format!("service-kit-secret-{}-{test}", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, content).expect("a temporary file");
        path
    }

    #[test]
    fn the_files_password_replaces_the_urls_and_is_percent_encoded() {
        let path = file_with("encoded", "p@ss w/rd:%\n");
        let mut url = "amqp://email:old@rabbitmq:5672/%2f".to_owned();
        put_password_from_file(&mut url, Some(&path), "AMQP_PASSWORD_FILE").expect("resolved");
        assert_eq!(url, "amqp://email:p%40ss%20w%2Frd%3A%25@rabbitmq:5672/%2f");
        let parsed = Url::parse(&url).expect("still a URL");
        assert_eq!(parsed.username(), "email");
        assert_eq!(parsed.host_str(), Some("rabbitmq"));
        assert_eq!(parsed.path(), "/%2f");
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn a_url_without_a_password_gets_one() {
        let path = file_with("added", "secret");
        let mut url = "postgres://registration@postgres:5432/registration".to_owned();
        put_password_from_file(&mut url, Some(&path), "DATABASE_PASSWORD_FILE").expect("resolved");
        assert_eq!(
            url,
            "postgres://registration:secret@postgres:5432/registration"
        );
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn without_a_file_the_url_is_left_alone() {
        let mut url = "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned();
        put_password_from_file(&mut url, None, "AMQP_PASSWORD_FILE").expect("nothing to do");
        assert_eq!(url, "amqp://guest:guest@127.0.0.1:5672/%2f");
    }

    #[test]
    fn a_missing_file_names_the_variable_and_the_path_but_no_url() {
        let mut url = "amqp://guest:hunter2@127.0.0.1:5672/%2f".to_owned();
        let error = put_password_from_file(
            &mut url,
            Some(Path::new("/nonexistent/secret")),
            "AMQP_PASSWORD_FILE",
        )
        .expect_err("no such file");
        let message = error.to_string();
        assert!(message.starts_with("AMQP_PASSWORD_FILE: cannot read /nonexistent/secret"));
        assert!(!message.contains("hunter2"));
    }
}
