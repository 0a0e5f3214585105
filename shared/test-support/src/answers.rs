//! Checks on what an app answers: problem documents and the served OpenAPI document.

use reqwest::Response;

/// The body of an error answer, checked to be an RFC 9457 problem document: served as
/// `application/problem+json`, with `type`, `title`, `detail` and `code` as strings and
/// `status` equal to the response's. Panics, naming `case`, otherwise.
pub async fn problem(response: Response, case: &str) -> serde_json::Value {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: serde_json::Value = response
        .json()
        .await
        .unwrap_or_else(|error| panic!("{case}: a JSON error body expected: {error}"));
    assert_eq!(
        content_type,
        service_kit::problem::CONTENT_TYPE,
        "{case}: {body}"
    );
    for member in ["type", "title", "detail", "code"] {
        assert!(body[member].is_string(), "{case}: `{member}` in {body}");
    }
    assert_eq!(body["status"], status.as_u16(), "{case}: {body}");
    body
}

/// Compares a service's generated OpenAPI document with the one committed as
/// `docs/openapi/<service>.json`; when they differ, writes the generated one over it and
/// panics, so the diff shows up in review (the same pattern as the event schemas' test).
/// Outside CI, run the test again to see it pass, then commit the file.
pub fn ensure_openapi_committed(service: &str, document: &impl serde::Serialize) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/openapi")
        .join(format!("{service}.json"));
    let mut generated = serde_json::to_string_pretty(document).expect("a document serialises");
    generated.push('\n');
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed.replace("\r\n", "\n") == generated {
        return;
    }
    std::fs::write(&path, generated).expect("docs/openapi is writable");
    panic!(
        "{} was out of date and has been regenerated; review and commit it",
        path.display()
    );
}

/// Checks a `GET /openapi.json` answer: 200, OpenAPI 3.1, each of `operations` (path,
/// method) present, the `Problem` schema among the components, and the whole document
/// equal to `generated` (what the code builds, and what is committed).
pub async fn check_served_openapi(
    response: Response,
    generated: &impl serde::Serialize,
    operations: &[(&str, &str)],
) {
    assert_eq!(
        response.status(),
        reqwest::StatusCode::OK,
        "GET /openapi.json"
    );
    let served: serde_json::Value = response.json().await.expect("a JSON document");
    let version = served["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1"), "OpenAPI 3.1, got {version:?}");
    for (path, method) in operations {
        assert!(
            served["paths"][path][method].is_object(),
            "{method} {path} is documented"
        );
    }
    assert!(served["components"]["schemas"]["Problem"].is_object());
    let generated = serde_json::to_value(generated).expect("a document serialises");
    assert_eq!(
        served, generated,
        "the served document is the generated one"
    );
}
