//! A PostgreSQL database of one run's own — the benchmark's, a test's — made on a server the
//! caller names and dropped when the value goes: nothing of the run is left behind, and nothing
//! already on the server is touched.

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;

/// A database created for this run; dropped (with its connections) on drop.
#[derive(Debug)]
pub struct ScratchDatabase {
    /// Where it was created from (a database on the same server the role can connect to).
    admin_url: String,
    name: String,
}

impl ScratchDatabase {
    /// `CREATE DATABASE <prefix>_<pid>_<random>` on the server of `admin_url`, whose role must
    /// be allowed to create databases. `prefix`: lower-case letters, digits and `_`.
    pub fn create(admin_url: &str, prefix: &str) -> anyhow::Result<ScratchDatabase> {
        anyhow::ensure!(
            !prefix.is_empty()
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "scratch database prefix {prefix:?}: lower-case letters, digits and _ only"
        );
        anyhow::ensure!(
            matches!(
                super::Target::parse(admin_url),
                Ok(super::Target::Postgres(_))
            ),
            "not a PostgreSQL URL (postgres://…)"
        );
        let name = format!(
            "{prefix}_{}_{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let mut c = PgConnection::establish(admin_url)
            .context("cannot connect to the PostgreSQL server")?;
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .with_context(|| format!("cannot create database {name} (the role needs CREATEDB)"))?;
        Ok(ScratchDatabase {
            admin_url: admin_url.to_string(),
            name,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its URL: the server's URL with this database's name.
    pub fn url(&self) -> String {
        with_database(&self.admin_url, &self.name)
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        match PgConnection::establish(&self.admin_url) {
            Ok(mut c) => {
                if let Err(e) = c.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                )) {
                    tracing::warn!(database = %self.name, error = %e, "cannot drop scratch database");
                }
            }
            Err(e) => {
                tracing::warn!(database = %self.name, error = %e, "cannot drop scratch database");
            }
        }
    }
}

/// `url` (`postgres://user@host:port/db?params`) with its database name replaced.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|j| start + j))
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_with_another_database() {
        assert_eq!(
            with_database("postgres://u@127.0.0.1:5432/postgres?sslmode=disable", "x"),
            "postgres://u@127.0.0.1:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(
            with_database("postgresql://h:1/a/b", "x"),
            "postgresql://h:1/x"
        );
    }

    #[test]
    fn only_plain_prefixes_and_postgres_urls() {
        for prefix in ["", "Quill", "a-b", "x; DROP"] {
            assert!(
                ScratchDatabase::create("postgres://127.0.0.1:1/postgres", prefix).is_err(),
                "{prefix:?}"
            );
        }
        let e = ScratchDatabase::create("sqlite://x.db", "quill").unwrap_err();
        assert!(e.to_string().contains("PostgreSQL"), "{e}");
    }

    /// Made on the tests' server, reachable at its URL, gone after drop.
    #[test]
    fn a_scratch_database_is_made_and_dropped() {
        let Some(admin) = crate::store::tests::test_pg_url() else {
            return;
        };
        let db = ScratchDatabase::create(&admin, "quill_scratch").unwrap();
        let name = db.name().to_string();
        assert!(name.starts_with("quill_scratch_"), "{name}");
        let mut c = PgConnection::establish(&db.url()).unwrap();
        #[derive(QueryableByName)]
        struct Current {
            #[diesel(sql_type = diesel::sql_types::Text)]
            name: String,
        }
        let here: Current = diesel::sql_query("SELECT current_database() AS name")
            .get_result(&mut c)
            .unwrap();
        assert_eq!(here.name, name);
        drop(c);
        drop(db);
        let mut admin_conn = PgConnection::establish(&admin).unwrap();
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let left: Count =
            diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
                .bind::<diesel::sql_types::Text, _>(&name)
                .get_result(&mut admin_conn)
                .unwrap();
        assert_eq!(left.n, 0, "{name} was dropped");
    }
}
