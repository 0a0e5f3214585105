//! Keeping every stored value sealed under the current key: rows written before sealing
//! existed (clear columns, migration 0006) are sealed, and rows sealed under an older key
//! (after a key rotation) are sealed again (`service_kit::pii::SealedTable::reseal`). Runs
//! at start, before the service serves.

use serde_json::Value;
use service_kit::pii::{SealedColumn, SealedTable, Sealer};
use sqlx::{PgConnection, PgPool};

use super::{
    StoreError,
    idempotency::{RESPONSE, request_hash},
    users::{DISPLAY_NAME, EMAIL},
};
use crate::outbox::PAYLOAD;

/// Rows per transaction.
const BATCH: i64 = 500;

/// The users' address (with its keyed hash, the unique index) and name.
static USERS: SealedTable = SealedTable {
    table: "users",
    columns: &[
        SealedColumn {
            column: EMAIL,
            clear: "email",
            sealed: "email_sealed",
            hash: Some("email_hash"),
        },
        SealedColumn {
            column: DISPLAY_NAME,
            clear: "display_name",
            sealed: "display_name_sealed",
            hash: None,
        },
    ],
};

/// The events' payloads (the event log).
static OUTBOX: SealedTable = SealedTable {
    table: "outbox",
    columns: &[SealedColumn {
        column: PAYLOAD,
        clear: "payload",
        sealed: "payload_sealed",
        hash: None,
    }],
};

/// Seals what is clear and re-seals what an older key sealed, in users, the event log and
/// the idempotency records. Returns how many rows changed.
pub async fn seal_all(db: &PgPool, pii: &Sealer) -> Result<u64, StoreError> {
    let mut changed = USERS.reseal(db, pii).await? + OUTBOX.reseal(db, pii).await?;
    loop {
        let mut tx = db.begin().await?;
        let batch = idempotency(&mut tx, pii).await?;
        tx.commit().await?;
        changed += batch;
        if batch == 0 {
            return Ok(changed);
        }
    }
}

/// The idempotency records are their own case: an old record's clear request becomes a
/// keyed hash of it (what a retry is compared by), its answer is sealed.
type IdempotencyRow = (String, Option<Value>, Option<String>, Option<Vec<u8>>);

async fn idempotency(tx: &mut PgConnection, pii: &Sealer) -> Result<u64, StoreError> {
    let prefix = pii.current_prefix();
    let rows: Vec<IdempotencyRow> = sqlx::query_as(
        "select idempotency_key, request, response_body::text, response_sealed
         from idempotency
         where request is not null or substring(response_sealed from 1 for $1) <> $2
         limit $3 for update",
    )
    .bind(i32::try_from(prefix.len()).unwrap_or(i32::MAX))
    .bind(&prefix)
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    for (key, request, response, response_sealed) in &rows {
        // A legacy request is hashed as the handler hashes a new one: the same two fields.
        let request = request.as_ref().map(|request| {
            let field = |name: &str| request.get(name).cloned().unwrap_or(Value::Null);
            serde_json::json!({"email": field("email"), "display_name": field("display_name")})
        });
        let response = match (response, response_sealed) {
            (Some(clear), _) => Some(clear.clone()),
            (None, Some(sealed)) => Some(pii.open(RESPONSE, sealed)?),
            (None, None) => None,
        };
        let sealed = response
            .map(|response| pii.seal(RESPONSE, &response))
            .transpose()?;
        sqlx::query(
            "update idempotency set request = null, response_body = null,
                 request_hash = coalesce($2, request_hash), response_sealed = $3
             where idempotency_key = $1",
        )
        .bind(key)
        .bind(request.map(|request| request_hash(pii, &request)))
        .bind(sealed)
        .execute(&mut *tx)
        .await?;
    }
    Ok(rows.len() as u64)
}
