//! `POST /users` (sign up) and `GET /users/{id}` (where the `Location` header points).

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use chrono::{DateTime, Utc};
use events::{Envelope, UserRegisteredV1};
use serde::{Deserialize, Serialize};
use service_kit::{json::Json, path::Path};
use uuid::Uuid;

use super::{ApiError, AppState, idempotency::IdempotencyKey};
use crate::{
    domain::NewUser,
    outbox::{OutboxEntry, SOURCE},
    store::{self, IdempotencyClaim, SignUp, User},
};

pub(super) fn router() -> Router<AppState> {
    metrics::describe_counter!("users_registered_total", "Sign-ups committed.");
    metrics::counter!("users_registered_total").increment(0);
    Router::new()
        .route("/users", post(register))
        .route("/users/{user_id}", get(find))
}

/// The sign-up body. Fields are optional here so that a missing one is reported by our
/// rules ("email is required", 422 naming the field) rather than by serde's wording.
#[derive(Debug, Deserialize, Serialize)]
struct RegisterUserRequest {
    email: Option<String>,
    display_name: Option<String>,
}

#[derive(Debug, Serialize)]
struct UserResponse {
    id: Uuid,
    email: String,
    display_name: String,
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
async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<RegisterUserRequest>,
) -> Result<Response, ApiError> {
    let new_user = NewUser::parse(request.email.as_deref(), request.display_name.as_deref())?;
    let key = IdempotencyKey::from_headers(&headers)?;
    let user = User::new(&new_user);
    let event = Envelope::new(SOURCE, user.user_id.to_string(), 1, registered_event(&user));
    let entry = OutboxEntry::new(&event)?;
    let body = serde_json::to_value(UserResponse::from(user.clone()))
        .expect("a struct of strings, a uuid and a timestamp always serialises");

    let user_id = user.user_id;
    let sign_up = SignUp { user, event: entry };

    match &key {
        None => state.sign_ups.insert(sign_up).await?,
        Some(key) => {
            let request_json = serde_json::json!({
                "email": new_user.email.as_ref(),
                "display_name": new_user.display_name.as_ref(),
            });
            let mut tx = state.db.begin().await?;
            match store::claim_idempotency_key(&mut tx, key.as_ref(), &request_json).await? {
                IdempotencyClaim::New => {}
                IdempotencyClaim::Replay { request, body } if request == request_json => {
                    tracing::info!("idempotent replay of an earlier sign-up");
                    return Ok(created(body));
                }
                IdempotencyClaim::Replay { .. } => return Err(ApiError::IdempotencyKeyReused),
            }
            store::insert_user(&mut tx, &sign_up).await?;
            let status = StatusCode::CREATED.as_u16();
            store::save_idempotent_response(&mut tx, key.as_ref(), status, &body).await?;
            tx.commit().await?;
        }
    }

    state.relay_wake.wake();
    metrics::counter!("users_registered_total").increment(1);
    tracing::info!(user_id = %user_id, event_id = %event.id, "user registered");
    Ok(created(body))
}

/// Reads a user back.
async fn find(
    State(state): State<AppState>,
    Path(user_id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let user = store::find_user(&state.db, user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(UserResponse::from(user)).into_response())
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
