//! The `Idempotency-Key` records: claimed in the sign-up's transaction, answered from on
//! a retry, forgotten after their retention.

use serde_json::Value;
use sqlx::PgConnection;
use tracing::Instrument;
use uuid::Uuid;

/// What a key means for this request.
#[derive(Debug)]
pub enum IdempotencyClaim {
    /// First use: the key is now held by this transaction.
    New,
    /// The key was used before; here is what was asked and answered then.
    Replay {
        /// The first request's normalised body.
        request: Value,
        /// The first answer's body.
        body: Value,
    },
}

/// Claims `key` inside the transaction. A concurrent request with the same key waits on
/// the primary key until this transaction ends, then sees the stored answer (or, if this
/// one rolled back, claims the key itself).
pub async fn claim_idempotency_key(
    tx: &mut PgConnection,
    key: &str,
    request: &Value,
) -> Result<IdempotencyClaim, sqlx::Error> {
    // One span for both statements: the read-back is part of claiming a taken key.
    async {
        let inserted = sqlx::query(
            "insert into idempotency (idempotency_key, request) values ($1, $2)
             on conflict (idempotency_key) do nothing",
        )
        .bind(key)
        .bind(request)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(IdempotencyClaim::New);
        }
        let (request, body): (Value, Option<Value>) = sqlx::query_as(
            "select request, response_body from idempotency where idempotency_key = $1",
        )
        .bind(key)
        .fetch_one(tx)
        .await?;
        Ok(IdempotencyClaim::Replay {
            request,
            body: body.unwrap_or(Value::Null),
        })
    }
    .instrument(service_kit::db_span!("INSERT", "idempotency"))
    .await
}

/// The idempotency keys' retention: a key older than `keep_for` is forgotten, and a
/// retry with it after that is a new sign-up (a 409 if the first one succeeded). Clients
/// retry within seconds or minutes; the request and answer it holds include the address.
pub fn idempotency_keys(keep_for: std::time::Duration) -> service_kit::retention::Retention {
    service_kit::retention::Retention {
        what: "idempotency keys",
        statement: "delete from idempotency where idempotency_key in (
                        select idempotency_key from idempotency where created_at < $1
                        limit $2 for update skip locked)",
        keep_for,
    }
}

/// Stores the answer for a claimed key, in the same transaction as the user, with the
/// user it created (so that erasing the user deletes the record too).
pub async fn save_idempotent_response(
    tx: &mut PgConnection,
    key: &str,
    user_id: Uuid,
    status: u16,
    body: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update idempotency set user_id = $2, response_status = $3, response_body = $4
         where idempotency_key = $1",
    )
    .bind(key)
    .bind(user_id)
    .bind(i16::try_from(status).unwrap_or(i16::MAX))
    .bind(body)
    .execute(tx)
    .instrument(service_kit::db_span!("UPDATE", "idempotency"))
    .await?;
    Ok(())
}
