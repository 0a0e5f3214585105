//! Typed HTTP clients for the three services' public APIs, so a test says what it asks
//! (`sign_up`, `wait_for` a profile, the mails `to` an address) rather than building
//! URLs.

use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

use crate::eventually::{PATIENCE, eventually};

/// One service instance's base URL with the client to reach it: what every typed client
/// below is built on.
#[derive(Debug, Clone)]
pub struct Endpoint<'a> {
    /// The system's HTTP client.
    http: &'a reqwest::Client,
    /// `http://127.0.0.1:<port>`.
    base: String,
}

impl<'a> Endpoint<'a> {
    /// The instance at `base`, reached with `http`.
    pub(super) fn new(http: &'a reqwest::Client, base: String) -> Self {
        Self { http, base }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET <path>`; fails the test if the service does not answer at all.
    pub async fn get(&self, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {} got no answer: {error}", self.url(path)))
    }

    /// A request to `<path>` with any method, for what the typed helpers do not cover.
    pub fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path))
    }
}

/// Registration's API: `POST /users` and `GET /users/{id}`.
#[derive(Debug, Clone)]
pub struct Registration<'a>(pub(super) Endpoint<'a>);

impl Registration<'_> {
    /// The endpoint, for requests the helpers below do not cover.
    pub fn endpoint(&self) -> &Endpoint<'_> {
        &self.0
    }

    /// A `POST /users` to add a body and headers to: for bodies no valid sign-up has.
    pub fn post_users(&self) -> RequestBuilder {
        self.0.request(reqwest::Method::POST, "/users")
    }

    /// `POST /users` with any JSON body and extra headers.
    pub async fn post_user(&self, body: &Value, headers: &[(&str, &str)]) -> Response {
        let mut request = self.post_users().json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("registration answers")
    }

    /// `POST /users` for `email` and `display_name`.
    pub async fn sign_up(&self, email: &str, display_name: &str) -> Response {
        self.post_user(
            &json!({ "email": email, "display_name": display_name }),
            &[],
        )
        .await
    }

    /// Signs a user up and returns the new id, asserting the `201`.
    pub async fn sign_up_ok(&self, email: &str, display_name: &str) -> String {
        let response = self.sign_up(email, display_name).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "sign-up of {email} failed"
        );
        let body: Value = response.json().await.expect("JSON body");
        body["id"].as_str().expect("an id").to_owned()
    }

    /// `GET <path>`, e.g. the `Location` of a new user.
    pub async fn get(&self, path: &str) -> Response {
        self.0.get(path).await
    }

    /// `DELETE /users/{user_id}`: the user asks to be forgotten.
    pub async fn delete_user(&self, user_id: &str) -> Response {
        self.0
            .request(reqwest::Method::DELETE, &format!("/users/{user_id}"))
            .send()
            .await
            .expect("registration answers")
    }
}

/// The profile service's API: `GET /profiles/{id}`.
#[derive(Debug, Clone)]
pub struct Profiles<'a>(pub(super) Endpoint<'a>);

impl Profiles<'_> {
    /// `GET /profiles/{user_id}`, whatever the answer.
    pub async fn get(&self, user_id: &str) -> Response {
        self.0.get(&format!("/profiles/{user_id}")).await
    }

    /// Polls `GET /profiles/{user_id}` until it is `200` and returns the profile; fails
    /// the test after [`PATIENCE`].
    pub async fn wait_for(&self, user_id: &str) -> Value {
        eventually(
            format!("profile {user_id} to appear"),
            PATIENCE,
            async || {
                let response = self.get(user_id).await;
                match response.status() {
                    StatusCode::OK => Ok(response.json::<Value>().await.expect("JSON body")),
                    status => Err(status),
                }
            },
        )
        .await
    }
}

/// The email service's API: `GET /emails?to=`.
#[derive(Debug, Clone)]
pub struct Emails<'a>(pub(super) Endpoint<'a>);

impl Emails<'_> {
    /// `GET <path>`, for requests the helpers do not cover (e.g. a missing query).
    pub async fn get(&self, path: &str) -> Response {
        self.0.get(path).await
    }

    /// `GET /emails?to=<address>`: the mail records for one address.
    pub async fn to(&self, address: &str) -> Vec<Value> {
        self.0
            .request(reqwest::Method::GET, "/emails")
            .query(&[("to", address)])
            .send()
            .await
            .expect("email answers")
            .json()
            .await
            .expect("a JSON list")
    }

    /// Polls `GET /emails?to=` until the mail to `address` is listed and every record
    /// for it is `sent`; returns the records, or fails the test after [`PATIENCE`].
    pub async fn wait_for_sent(&self, address: &str) -> Vec<Value> {
        eventually(
            format!("a sent mail to {address} in GET /emails"),
            PATIENCE,
            async || {
                let mails = self.to(address).await;
                if !mails.is_empty() && mails.iter().all(|mail| mail["status"] == "sent") {
                    Ok(mails)
                } else {
                    Err(Value::from(mails))
                }
            },
        )
        .await
    }
}

/// The `traceresponse` header of a registration answer (`00-<trace>-<span>-<flags>`).
pub fn traceresponse(response: &Response) -> String {
    response.headers()["traceresponse"]
        .to_str()
        .expect("an ASCII traceresponse header")
        .to_owned()
}

/// The trace id in a `traceresponse` (or `traceparent`) value: the trace to look up.
pub fn trace_id(traceresponse: &str) -> String {
    traceresponse
        .split('-')
        .nth(1)
        .expect("00-trace-span-flags")
        .to_owned()
}
