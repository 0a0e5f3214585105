//! Keeping every stored value sealed under the current key: rows written before sealing
//! existed (clear columns, migration 0006) are sealed, and rows sealed under an older key
//! (after a key rotation) are sealed again. Runs at start, before the service serves, in
//! batches; two instances starting together take turns on the rows (`for update`: the
//! second re-reads a row the first changed and finds nothing left to do).

use serde_json::Value;
use service_kit::pii::{Column, PiiError, Sealer};
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use uuid::Uuid;

use super::{
    StoreError,
    idempotency::{RESPONSE, request_hash},
    users::{DISPLAY_NAME, EMAIL},
};
use crate::outbox::PAYLOAD;

/// Rows per transaction.
const BATCH: i64 = 500;

/// Which of a table's rows [`seal_all`] visits, one batch at a time.
#[derive(Debug, Clone, Copy)]
enum Table {
    Users,
    Outbox,
    Idempotency,
}

/// Seals what is clear and re-seals what an older key sealed, in users, the event log and
/// the idempotency records. Returns how many rows changed.
pub async fn seal_all(db: &PgPool, pii: &Sealer) -> Result<u64, StoreError> {
    let mut changed = 0;
    for table in [Table::Users, Table::Outbox, Table::Idempotency] {
        loop {
            let mut tx = db.begin().await?;
            let batch = match table {
                Table::Users => users(&mut tx, pii).await?,
                Table::Outbox => outbox(&mut tx, pii).await?,
                Table::Idempotency => idempotency(&mut tx, pii).await?,
            };
            tx.commit().await?;
            changed += batch;
            if batch == 0 {
                break;
            }
        }
    }
    Ok(changed)
}

/// `select <columns> from <table> where <clear> is not null or <sealed ones are stale>
/// limit $3 for update`, where `$1` and `$2` are the current key's prefix length and
/// bytes. Only names written in this module are spliced in, never data.
fn stale_rows(columns: &str, table: &str, clear: &str, sealed: &[&str]) -> AssertSqlSafe<String> {
    let stale: Vec<String> = sealed
        .iter()
        .map(|column| format!("substring({column} from 1 for $1) <> $2"))
        .collect();
    AssertSqlSafe(format!(
        "select {columns} from {table} where {clear} is not null or {} limit $3 for update",
        stale.join(" or ")
    ))
}

/// The current key's prefix, bound as `$1` and `$2`, and the batch size as `$3`.
fn bind_prefix<'q, O>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    prefix: &'q [u8],
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    query
        .bind(i32::try_from(prefix.len()).unwrap_or(i32::MAX))
        .bind(prefix)
        .bind(BATCH)
}

/// The value of a column pair: the clear one if the row predates sealing, else opened.
fn opened(
    pii: &Sealer,
    column: Column,
    clear: Option<String>,
    sealed: Option<&[u8]>,
) -> Result<String, PiiError> {
    match (clear, sealed) {
        (Some(clear), _) => Ok(clear),
        (None, Some(sealed)) => pii.open(column, sealed),
        (None, None) => Err(PiiError::Unreadable(column)),
    }
}

type UserRow = (
    Uuid,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
);

async fn users(tx: &mut PgConnection, pii: &Sealer) -> Result<u64, StoreError> {
    let prefix = pii.current_prefix();
    let rows: Vec<UserRow> = bind_prefix(
        sqlx::query_as(stale_rows(
            "user_id, email, display_name, email_sealed, display_name_sealed",
            "users",
            "email",
            &["email_sealed", "display_name_sealed"],
        )),
        &prefix,
    )
    .fetch_all(&mut *tx)
    .await?;
    for (user_id, email, name, email_sealed, name_sealed) in &rows {
        let email = opened(pii, EMAIL, email.clone(), email_sealed.as_deref())?;
        let name = opened(pii, DISPLAY_NAME, name.clone(), name_sealed.as_deref())?;
        sqlx::query(
            "update users set email = null, display_name = null, email_hash = $2,
                 email_sealed = $3, display_name_sealed = $4
             where user_id = $1",
        )
        .bind(user_id)
        .bind(pii.lookup_hash(EMAIL, &email))
        .bind(pii.seal(EMAIL, &email)?)
        .bind(pii.seal(DISPLAY_NAME, &name)?)
        .execute(&mut *tx)
        .await?;
    }
    Ok(rows.len() as u64)
}

async fn outbox(tx: &mut PgConnection, pii: &Sealer) -> Result<u64, StoreError> {
    let prefix = pii.current_prefix();
    let rows: Vec<(i64, Option<String>, Option<Vec<u8>>)> = bind_prefix(
        sqlx::query_as(stale_rows(
            "position, payload::text, payload_sealed",
            "outbox",
            "payload",
            &["payload_sealed"],
        )),
        &prefix,
    )
    .fetch_all(&mut *tx)
    .await?;
    for (position, payload, sealed) in &rows {
        let payload = opened(pii, PAYLOAD, payload.clone(), sealed.as_deref())?;
        sqlx::query("update outbox set payload = null, payload_sealed = $2 where position = $1")
            .bind(position)
            .bind(pii.seal(PAYLOAD, &payload)?)
            .execute(&mut *tx)
            .await?;
    }
    Ok(rows.len() as u64)
}

type IdempotencyRow = (String, Option<Value>, Option<String>, Option<Vec<u8>>);

async fn idempotency(tx: &mut PgConnection, pii: &Sealer) -> Result<u64, StoreError> {
    let prefix = pii.current_prefix();
    let rows: Vec<IdempotencyRow> = bind_prefix(
        sqlx::query_as(stale_rows(
            "idempotency_key, request, response_body::text, response_sealed",
            "idempotency",
            "request",
            &["response_sealed"],
        )),
        &prefix,
    )
    .fetch_all(&mut *tx)
    .await?;
    for (key, request, response, response_sealed) in &rows {
        // A legacy request is hashed as the handler hashes a new one: the same two fields.
        let request = request.as_ref().map(|request| {
            let field = |name: &str| request.get(name).cloned().unwrap_or(Value::Null);
            serde_json::json!({"email": field("email"), "display_name": field("display_name")})
        });
        let response = match (response, response_sealed) {
            (None, None) => None,
            (clear, sealed) => Some(opened(pii, RESPONSE, clear.clone(), sealed.as_deref())?),
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
