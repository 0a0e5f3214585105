//! The `Idempotency-Key` records: claimed in the sign-up's transaction, answered from on
//! a retry, forgotten after their retention.

use serde_json::Value;
use service_kit::pii::{Column, Sealer};
use sqlx::PgConnection;
use tracing::Instrument;
use uuid::Uuid;

use super::StoreError;

/// The request's keyed hash: a retry with the same body has the same one, and nothing can
/// be learnt from it without the key.
pub(crate) const REQUEST: Column = "idempotency.request";
/// The sealed answer (it repeats the address and the name).
pub(crate) const RESPONSE: Column = "idempotency.response";

/// What a key means for this request.
#[derive(Debug)]
pub enum IdempotencyClaim {
    /// First use: the key is now held by this transaction.
    New,
    /// The key was used before with the same request; here is the answer then.
    Replay {
        /// The first answer's body.
        body: Value,
    },
    /// The key was used before with a different request.
    Reused,
}

/// Claims `key` inside the transaction for `request` (the normalised body). A concurrent
/// request with the same key waits on the primary key until this transaction ends, then
/// sees the stored answer (or, if this one rolled back, claims the key itself).
pub async fn claim_idempotency_key(
    tx: &mut PgConnection,
    pii: &Sealer,
    key: &str,
    request: &Value,
) -> Result<IdempotencyClaim, StoreError> {
    let request_hash = request_hash(pii, request);
    // One span for both statements: the read-back is part of claiming a taken key.
    async {
        let inserted = sqlx::query(
            "insert into idempotency (idempotency_key, request_hash) values ($1, $2)
             on conflict (idempotency_key) do nothing",
        )
        .bind(key)
        .bind(&request_hash)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(IdempotencyClaim::New);
        }
        let (first_request, body): (Option<Vec<u8>>, Option<Vec<u8>>) = sqlx::query_as(
            "select request_hash, response_sealed from idempotency where idempotency_key = $1",
        )
        .bind(key)
        .fetch_one(tx)
        .await?;
        if first_request.as_deref() != Some(request_hash.as_slice()) {
            return Ok(IdempotencyClaim::Reused);
        }
        let body = match body {
            Some(sealed) => serde_json::from_str(&pii.open(RESPONSE, &sealed)?)
                .map_err(|error| sqlx::Error::Decode(Box::new(error)))?,
            None => Value::Null,
        };
        Ok(IdempotencyClaim::Replay { body })
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
    pii: &Sealer,
    key: &str,
    user_id: Uuid,
    status: u16,
    body: &Value,
) -> Result<(), StoreError> {
    let sealed = pii.seal(RESPONSE, &body.to_string())?;
    sqlx::query(
        "update idempotency set user_id = $2, response_status = $3, response_sealed = $4
         where idempotency_key = $1",
    )
    .bind(key)
    .bind(user_id)
    .bind(i16::try_from(status).unwrap_or(i16::MAX))
    .bind(sealed)
    .execute(tx)
    .instrument(service_kit::db_span!("UPDATE", "idempotency"))
    .await?;
    Ok(())
}

/// The keyed hash of a normalised request. `Value`'s text has its keys in one order, so
/// equal requests hash alike.
pub(crate) fn request_hash(pii: &Sealer, request: &Value) -> Vec<u8> {
    pii.lookup_hash(REQUEST, &request.to_string())
}
