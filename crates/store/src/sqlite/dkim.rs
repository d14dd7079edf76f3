//! DKIM signing keys.

use async_trait::async_trait;
use rusqlite::{Row, params};

use super::{Sqlite, db_err, exec};
use crate::*;

fn from_row(r: &Row<'_>) -> rusqlite::Result<DkimKeyRecord> {
    let state: String = r.get(5)?;
    let state = DkimKeyState::parse(&state).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            5,
            rusqlite::types::Type::Text,
            format!("unknown DKIM key state {state:?}").into(),
        )
    })?;
    Ok(DkimKeyRecord {
        domain: r.get(0)?,
        selector: r.get(1)?,
        algorithm: r.get(2)?,
        private_pem: r.get(3)?,
        created: r.get(4)?,
        state,
    })
}

const COLUMNS: &str = "domain, selector, algorithm, private_pem, created, state";

#[async_trait]
impl KeyStore for Sqlite {
    async fn dkim_key_put(&self, key: &DkimKeyRecord) -> Result<()> {
        let k = key.clone();
        self.0
            .writer
            .write(move |tx| {
                exec(
                    tx.conn,
                    "INSERT OR REPLACE INTO dkim_keys(domain, selector, algorithm, private_pem, created, state) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![k.domain, k.selector, k.algorithm, k.private_pem, k.created, k.state.as_str()],
                )
                .map_err(db_err)?;
                Ok(())
            })
            .await
    }

    async fn dkim_keys(&self, domain: Option<&str>) -> Result<Vec<DkimKeyRecord>> {
        let domain = domain.map(str::to_string);
        self.0
            .read(move |c, _| {
                let mut st = c
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM dkim_keys WHERE ?1 IS NULL OR domain = ?1 \
                         ORDER BY domain, created, selector"
                    ))
                    .map_err(db_err)?;
                let rows = st.query_map([domain], from_row).map_err(db_err)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
            })
            .await
    }

    async fn dkim_key_set_state(
        &self,
        domain: &str,
        selector: &str,
        state: DkimKeyState,
    ) -> Result<()> {
        let (d, s) = (domain.to_string(), selector.to_string());
        self.0
            .writer
            .write(move |tx| {
                let n = exec(
                    tx.conn,
                    "UPDATE dkim_keys SET state = ?1 WHERE domain = ?2 AND selector = ?3",
                    params![state.as_str(), d, s],
                )
                .map_err(db_err)?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!("DKIM key {s}._domainkey.{d}")));
                }
                Ok(())
            })
            .await
    }

    async fn dkim_key_delete(&self, domain: &str, selector: &str) -> Result<()> {
        let (d, s) = (domain.to_string(), selector.to_string());
        self.0
            .writer
            .write(move |tx| {
                let n = exec(
                    tx.conn,
                    "DELETE FROM dkim_keys WHERE domain = ?1 AND selector = ?2",
                    params![d, s],
                )
                .map_err(db_err)?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!("DKIM key {s}._domainkey.{d}")));
                }
                Ok(())
            })
            .await
    }
}
