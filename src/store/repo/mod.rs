//! Queries, one file per aggregate. Functions take a connection so the service layer can group
//! them in one transaction when a decision spans tables.

/// Store a secret's hash made again in place of `$old` in `$table`'s row `$id`, unless it
/// changed meanwhile (another instance made it again first, or an operator set a new one):
/// whether it was stored.
macro_rules! replace_hash {
    ($conn:expr, $table:ident, $column:ident, $id:expr, $old:expr, $new:expr) => {{
        let n = diesel::update(
            $table::table
                .filter($table::id.eq($id))
                .filter($table::$column.eq($old)),
        )
        .set($table::$column.eq($new))
        .execute($conn)?;
        Ok(n == 1)
    }};
}

pub mod audit;
pub mod challenges;
pub mod credentials;
pub mod oauth;
pub mod purge;
pub mod sads;
pub mod sign_jobs;
pub mod tokens;
pub mod users;
