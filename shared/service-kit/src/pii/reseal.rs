//! Keeping a table's personal data sealed under the current key: values an older version
//! wrote in clear are sealed, values sealed under an older key (before a rotation) are
//! sealed again. Each service runs it at start, before it serves, for each table that
//! holds personal data.

use sqlx::{AssertSqlSafe, PgPool, Row};

use super::{Column, PiiError, Sealer};

/// Rows per transaction.
const BATCH: i64 = 500;

/// One value of personal data in a table: where an older version kept it in clear, where
/// it is sealed now, and where its keyed hash goes if it is looked up by.
#[derive(Debug, Clone, Copy)]
pub struct SealedColumn {
    /// The sealing context, e.g. `users.email` (what [`Sealer::seal`] binds in).
    pub column: Column,
    /// The clear column (read as text; emptied once sealed).
    pub clear: &'static str,
    /// The sealed `bytea` column.
    pub sealed: &'static str,
    /// The keyed hash's `bytea` column, if the value is looked up by.
    pub hash: Option<&'static str>,
}

/// A table with personal data in it.
#[derive(Debug, Clone, Copy)]
pub struct SealedTable {
    /// Its name.
    pub table: &'static str,
    /// Its personal data.
    pub columns: &'static [SealedColumn],
}

/// Why re-sealing stopped. Rows done before stay done; the next start goes on.
#[derive(Debug, thiserror::Error)]
pub enum ResealError {
    /// A statement failed.
    #[error("re-sealing: {0}")]
    Database(#[from] sqlx::Error),
    /// A value does not open (its key was dropped from `PII_KEYS` too early).
    #[error("re-sealing: {0}")]
    Sealing(#[from] PiiError),
}

impl SealedTable {
    /// Seals every value of the table that is clear or under an older key, in batches
    /// that each lock their rows (`for update`): two instances starting at once take
    /// turns, and the second finds nothing left in a row the first changed. Returns how
    /// many rows changed.
    pub async fn reseal(&self, db: &PgPool, pii: &Sealer) -> Result<u64, ResealError> {
        let prefix = pii.current_prefix();
        let (select, update) = (self.select_stale(), self.update_row());
        let mut changed = 0;
        loop {
            let mut tx = db.begin().await?;
            let rows = sqlx::query(AssertSqlSafe(select.clone()))
                .bind(i32::try_from(prefix.len()).unwrap_or(i32::MAX))
                .bind(&prefix)
                .bind(BATCH)
                .fetch_all(&mut *tx)
                .await?;
            for row in &rows {
                let mut query =
                    sqlx::query(AssertSqlSafe(update.clone())).bind(row.try_get::<String, _>(0)?);
                for (index, column) in self.columns.iter().enumerate() {
                    let clear: Option<String> = row.try_get(1 + 2 * index)?;
                    let sealed: Option<Vec<u8>> = row.try_get(2 + 2 * index)?;
                    let value = match (clear, sealed) {
                        (Some(clear), _) => Some(clear),
                        (None, Some(sealed)) => Some(pii.open(column.column, &sealed)?),
                        (None, None) => None,
                    };
                    let sealed = value
                        .as_deref()
                        .map(|value| pii.seal(column.column, value))
                        .transpose()?;
                    query = query.bind(sealed);
                    if column.hash.is_some() {
                        let hash = value
                            .as_deref()
                            .map(|value| pii.lookup_hash(column.column, value));
                        query = query.bind(hash);
                    }
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            changed += rows.len() as u64;
            if rows.is_empty() {
                return Ok(changed);
            }
        }
    }

    /// `select ctid, <clear, sealed>… from <table> where <any clear is set or any sealed
    /// is under another key> limit $3 for update`; `$1`, `$2`: the current key's prefix
    /// length and bytes. Only names from the service's own code are spliced in.
    fn select_stale(&self) -> String {
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{}::text, {}", c.clear, c.sealed))
            .collect();
        let stale: Vec<String> = self
            .columns
            .iter()
            .flat_map(|c| {
                [
                    format!("{} is not null", c.clear),
                    format!("substring({} from 1 for $1) <> $2", c.sealed),
                ]
            })
            .collect();
        format!(
            "select ctid::text, {} from {} where {} limit $3 for update",
            columns.join(", "),
            self.table,
            stale.join(" or ")
        )
    }

    /// `update <table> set <clear> = null, <sealed> = $n[, <hash> = $n+1]… where ctid = $1`
    /// (the row is locked, so its ctid holds until this update).
    fn update_row(&self) -> String {
        let mut parameter = 1;
        let mut sets = Vec::new();
        for column in self.columns {
            parameter += 1;
            sets.push(format!(
                "{} = null, {} = ${parameter}",
                column.clear, column.sealed
            ));
            if let Some(hash) = column.hash {
                parameter += 1;
                sets.push(format!("{hash} = ${parameter}"));
            }
        }
        format!(
            "update {} set {} where ctid = $1::tid",
            self.table,
            sets.join(", ")
        )
    }
}
