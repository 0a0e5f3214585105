//! `POST /users` (sign up), `GET /users/{id}` (where the `Location` header points) and
//! `DELETE /users/{id}` (the user asks to be forgotten).

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, SubsecRound, Utc};
use events::{Envelope, UserDeletedV1, UserRegisteredV1};
use serde::{Deserialize, Serialize};
use service_kit::{
    json::Json,
    openapi::{InternalError, Unavailable},
    path::Path,
    problem::Problem,
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{ApiError, AppState, idempotency::IdempotencyKey};
use crate::{
    domain::NewUser,
    outbox::{OutboxEntry, SOURCE},
    store::{self, ErasureTarget, IdempotencyClaim, SignUp, StoreError, User},
};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(find, erase))
}

/// Describes the sign-up counter (at 0 until the first sign-up).
pub(super) fn describe_metrics() {
    metrics::describe_counter!("users_registered_total", "Sign-ups committed.");
    metrics::counter!("users_registered_total").increment(0);
    metrics::describe_counter!("users_erased_total", "Users erased at their request.");
    metrics::counter!("users_erased_total").increment(0);
    metrics::describe_counter!(
        "sign_ups_rate_limited_total",
        "Sign-ups answered 429: their client was over SIGN_UP_RATE_LIMIT_PER_SECOND."
    );
    metrics::counter!("sign_ups_rate_limited_total").increment(0);
}

/// The sign-up body. Fields are optional here so that a missing one is reported by our
/// rules ("email is required", 422 naming the field) rather than by serde's wording; the
/// document states those rules (`domain::EmailAddress`, `domain::DisplayName`) as
/// patterns, so that a client, and schemathesis, know what is accepted.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
struct RegisterUserRequest {
    /// The address, trimmed and lower-cased before it is stored. The pattern is what is
    /// accepted for certain: up to 64 characters before the `@` (ASCII), a domain of at
    /// least two labels (the service also takes non-ASCII letters in both).
    #[schema(
        required = true,
        value_type = String,
        max_length = 254,
        pattern = r#"^[!#-'*+\-./0-9=?A-Z^-~]{1,64}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"#,
        example = "ada@example.org"
    )]
    email: Option<String>,
    /// 1 to 100 characters after trimming, at least one that is not a space, no control
    /// characters.
    #[schema(
        required = true,
        value_type = String,
        min_length = 1,
        max_length = 100,
        pattern = r#"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"#,
        example = "Ada"
    )]
    display_name: Option<String>,
}

/// A registered user.
#[derive(Debug, Serialize, ToSchema)]
struct UserResponse {
    /// UUIDv7, also the `subject` of the user's events.
    id: Uuid,
    /// As stored: trimmed and lower-cased.
    email: String,
    /// As stored: trimmed.
    display_name: String,
    /// When the user signed up.
    created_at: DateTime<Utc>,
}

impl From<User> for UserResponse {
    fn from(user: User) -> Self {
        Self {
            id: user.user_id,
            email: user.email,
            display_name: user.display_name,
            created_at: user.created_at,
        }
    }
}

/// Signs a user up: the user and its `user.registered.v1` outbox row are written in one
/// statement, shared with the other sign-ups in flight ([`crate::sign_ups`]); with an
/// `Idempotency-Key`, in one transaction with the key's record. The relay is woken after
/// the commit.
#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    summary = "Sign up",
    description = "Creates the user and, in the same transaction, its `user.registered.v1` event. \
        The address is trimmed and lower-cased; a second sign-up with it is a 409.",
    request_body = RegisterUserRequest,
    params(
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[ \\t]*[!-~]([ -~]{0,253}[!-~])?[ \\t]*$",
         description = "1 to 255 printable ASCII characters, spaces allowed inside (spaces and tabs around it are not part of it: HTTP strips them); a retry with the same key and body gets the first answer again, another body with it a 422"),
    ),
    responses(
        (status = 201, description = "Signed up; `Location` is the user", body = UserResponse,
         headers(("Location" = String, description = "/users/{id}"),
                 ("traceresponse" = String, description = "W3C trace context of this request"))),
        (status = 400, description = "malformed JSON, an unusable Idempotency-Key, or an id that is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the address belongs to a user already", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "the body is over 16 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "the body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "a field is missing, of the wrong type or breaks its rule, or the Idempotency-Key was used with another body", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "this client signed up more often than SIGN_UP_RATE_LIMIT_PER_SECOND allows (after a burst of SIGN_UP_RATE_LIMIT_BURST); retry after the seconds in Retry-After", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "seconds until the next sign-up is allowed"))),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<RegisterUserRequest>,
) -> Result<Response, ApiError> {
    let new_user = NewUser::parse(request.email.as_deref(), request.display_name.as_deref())?;
    let key = IdempotencyKey::from_headers(&headers)?;
    let user = User::new(&new_user);
    let event = Envelope::new(SOURCE, user.user_id.to_string(), 1, registered_event(&user));
    let entry = OutboxEntry::new(&event, &state.pii)?;
    let body = serde_json::to_value(UserResponse::from(user.clone()))
        .expect("a struct of strings, a uuid and a timestamp always serialises");

    let user_id = user.user_id;
    let sign_up = SignUp::new(&user, entry, &state.pii).map_err(StoreError::from)?;

    match &key {
        None => state.sign_ups.insert(sign_up).await?,
        Some(key) => {
            let request_json = serde_json::json!({
                "email": new_user.email.as_ref(),
                "display_name": new_user.display_name.as_ref(),
            });
            let mut tx = state.db.begin().await?;
            let claim =
                store::claim_idempotency_key(&mut tx, &state.pii, key.as_ref(), &request_json)
                    .await?;
            match claim {
                IdempotencyClaim::New => {}
                IdempotencyClaim::Replay { body } => {
                    tracing::info!("idempotent replay of an earlier sign-up");
                    return Ok(created(body));
                }
                IdempotencyClaim::Reused => return Err(ApiError::IdempotencyKeyReused),
            }
            store::insert_user(&mut tx, &sign_up).await?;
            let status = StatusCode::CREATED.as_u16();
            let (pii, key) = (&state.pii, key.as_ref());
            store::save_idempotent_response(&mut tx, pii, key, user_id, status, &body).await?;
            tx.commit().await?;
        }
    }

    state.relay_wake.wake();
    metrics::counter!("users_registered_total").increment(1);
    tracing::info!(user_id = %user_id, event_id = %event.id, "user registered");
    Ok(created(body))
}

/// Reads a user back.
#[utoipa::path(
    get,
    path = "/users/{user_id}",
    tag = "users",
    summary = "Read a user back",
    description = "Where a sign-up's `Location` points.",
    params(("user_id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user", body = UserResponse),
        (status = 400, description = "malformed JSON, an unusable Idempotency-Key, or an id that is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such user", body = Problem, content_type = "application/problem+json"),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn find(
    State(state): State<AppState>,
    Path(user_id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let user = store::find_user(&state.db, &state.pii, user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(UserResponse::from(user)).into_response())
}

/// Erases a user: their row, their earlier events in the event log and their sign-up's
/// idempotency record go, in the transaction that writes their `user.deleted.v1` to the
/// outbox; email and profile erase their copies when it arrives (docs/decisions/0012).
/// Erasing an erased user again changes nothing and answers the same.
#[utoipa::path(
    delete,
    path = "/users/{user_id}",
    tag = "users",
    summary = "Forget a user",
    description = "Erases the user's personal data here and, through the `user.deleted.v1` \
        event written in the same transaction, in every service that holds a copy. \
        Repeating it answers 204 again; the address is free for a new sign-up at once.",
    params(("user_id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 204, description = "Erased (now, or before)",
         headers(("traceresponse" = String, description = "W3C trace context of this request"))),
        (status = 400, description = "an id that is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no user ever had this id", body = Problem, content_type = "application/problem+json"),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn erase(
    State(state): State<AppState>,
    Path(user_id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let mut tx = state.db.begin().await?;
    let next_sequence = match store::lock_for_erasure(&mut tx, user_id).await? {
        ErasureTarget::Present { next_sequence } => next_sequence,
        ErasureTarget::AlreadyErased => return Ok(StatusCode::NO_CONTENT.into_response()),
        ErasureTarget::Unknown => return Err(ApiError::NotFound),
    };
    let deleted_at = Utc::now().trunc_subsecs(6);
    let data = UserDeletedV1 {
        user_id,
        deleted_at,
    };
    let event = Envelope::new(SOURCE, user_id.to_string(), next_sequence, data);
    let entry = OutboxEntry::new(&event, &state.pii)?;
    store::erase_user(&mut tx, user_id, deleted_at, &entry).await?;
    tx.commit().await?;

    state.relay_wake.wake();
    metrics::counter!("users_erased_total").increment(1);
    tracing::info!(user_id = %user_id, event_id = %event.id, "user erased");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// 201 with the user and a `Location` header; `body` is a serialised [`UserResponse`],
/// either just built or replayed from the idempotency record.
fn created(body: serde_json::Value) -> Response {
    let id = body
        .get("id")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let location = format!("/users/{id}");
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response()
}

fn registered_event(user: &User) -> UserRegisteredV1 {
    UserRegisteredV1 {
        user_id: user.user_id,
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        registered_at: user.created_at,
    }
}
