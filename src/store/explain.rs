//! The database's plan for a query, as the database itself reports it: `EXPLAIN (FORMAT JSON)`
//! on PostgreSQL, `EXPLAIN QUERY PLAN` on SQLite, wrapped around the very diesel query the
//! repositories run (same SQL, same binds). Tests use it to prove that `credentials/list` and
//! `credentials/info` are index lookups at scale; `quill bench scale` prints it.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Integer, Text};
use diesel::sqlite::Sqlite;

use super::StoreError;

/// `EXPLAIN (FORMAT JSON) <query>` (PostgreSQL): one row, the plan as JSON text.
pub struct PgExplain<Q>(pub Q);

/// `EXPLAIN QUERY PLAN <query>` (SQLite): one row per plan step (id, parent, unused, detail).
pub struct SqliteExplain<Q>(pub Q);

impl<Q> QueryId for PgExplain<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q> QueryId for SqliteExplain<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for PgExplain<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("EXPLAIN (FORMAT JSON) ");
        self.0.walk_ast(out.reborrow())
    }
}

impl<Q: QueryFragment<Sqlite>> QueryFragment<Sqlite> for SqliteExplain<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("EXPLAIN QUERY PLAN ");
        self.0.walk_ast(out.reborrow())
    }
}

impl<Q> Query for PgExplain<Q> {
    type SqlType = Text;
}

impl<Q> Query for SqliteExplain<Q> {
    type SqlType = (Integer, Integer, Integer, Text);
}

impl<Q, C> RunQueryDsl<C> for PgExplain<Q> {}
impl<Q, C> RunQueryDsl<C> for SqliteExplain<Q> {}

/// A query plan: the backend, one line per plan node (outermost first; PostgreSQL nodes as
/// `Node Type [using Index Name] [on Relation Name] [(Index Cond)]`, SQLite steps as their
/// `detail`), and the raw plan text.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueryPlan {
    pub backend: &'static str,
    pub nodes: Vec<String>,
    pub raw: String,
}

impl QueryPlan {
    /// From PostgreSQL's JSON plan.
    pub fn from_pg_json(raw: String) -> Result<QueryPlan, StoreError> {
        let json: serde_json::Value = serde_json::from_str(&raw)
            .map_err(|e| StoreError::Query(format!("EXPLAIN output is not JSON: {e}")))?;
        let mut nodes = Vec::new();
        let root = json
            .as_array()
            .and_then(|a| a.first())
            .and_then(|p| p.get("Plan"))
            .ok_or_else(|| StoreError::Query("EXPLAIN output without a Plan".into()))?;
        walk_pg(root, &mut nodes);
        Ok(QueryPlan {
            backend: "postgres",
            nodes,
            raw,
        })
    }

    /// From SQLite's plan steps.
    pub fn from_sqlite(steps: Vec<(i32, i32, i32, String)>) -> QueryPlan {
        let nodes: Vec<String> = steps.into_iter().map(|(_, _, _, d)| d).collect();
        QueryPlan {
            backend: "sqlite",
            raw: nodes.join("\n"),
            nodes,
        }
    }

    /// Does any node read a whole table or a whole index (PostgreSQL `Seq Scan`, SQLite
    /// `SCAN …`, with or without an index: SQLite says `SEARCH` when it seeks)?
    pub fn has_full_scan(&self) -> bool {
        self.nodes
            .iter()
            .any(|n| n.starts_with("Seq Scan") || n.starts_with("SCAN "))
    }

    /// Does any node sort rows (the index should already deliver them in order)?
    pub fn sorts(&self) -> bool {
        self.nodes
            .iter()
            .any(|n| n.starts_with("Sort") || n.contains("TEMP B-TREE"))
    }

    /// Does any node seek through the index `name` (PostgreSQL `… using NAME`, SQLite
    /// `SEARCH … USING [COVERING] INDEX NAME …`)?
    pub fn uses_index(&self, name: &str) -> bool {
        self.nodes.iter().any(|n| {
            let words: Vec<&str> = n.split_whitespace().collect();
            let named = |marker: &str| {
                words
                    .windows(2)
                    .any(|w| matches!(w, [a, b] if *a == marker && *b == name))
            };
            if n.starts_with("SEARCH ") {
                named("INDEX")
            } else {
                named("using")
            }
        })
    }

    /// Does the seek on index `name` use `column` in its condition (not just filter on it)?
    pub fn seeks_on(&self, name: &str, column: &str) -> bool {
        self.nodes.iter().any(|n| {
            n.contains(name)
                && n.split_once('(')
                    .is_some_and(|(_, cond)| cond.contains(column))
        })
    }

    /// The nodes on one line, outermost first.
    pub fn summary(&self) -> String {
        self.nodes.join(" > ")
    }
}

fn walk_pg(node: &serde_json::Value, out: &mut Vec<String>) {
    let field = |k: &str| node.get(k).and_then(serde_json::Value::as_str);
    let mut line = field("Node Type").unwrap_or("?").to_string();
    if let Some(index) = field("Index Name") {
        line.push_str(" using ");
        line.push_str(index);
    }
    if let Some(rel) = field("Relation Name") {
        line.push_str(" on ");
        line.push_str(rel);
    }
    if let Some(cond) = field("Index Cond") {
        line.push_str(" (");
        line.push_str(cond);
        line.push(')');
    }
    out.push(line);
    if let Some(children) = node.get("Plans").and_then(serde_json::Value::as_array) {
        for child in children {
            walk_pg(child, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_json_plans_flatten_to_nodes() {
        let raw = r#"[{"Plan": {"Node Type": "Limit", "Plans": [{"Node Type": "Index Scan",
            "Index Name": "credentials_user_order", "Relation Name": "credentials"}]}}]"#;
        let plan = QueryPlan::from_pg_json(raw.into()).unwrap();
        assert_eq!(
            plan.nodes,
            vec![
                "Limit",
                "Index Scan using credentials_user_order on credentials"
            ]
        );
        assert!(plan.uses_index("credentials_user_order"));
        assert!(!plan.uses_index("credentials_pkey"));
        assert!(!plan.has_full_scan());
        let bitmap = r#"[{"Plan": {"Node Type": "Sort", "Plans": [{"Node Type": "Bitmap Heap Scan",
            "Relation Name": "credentials", "Plans": [{"Node Type": "Bitmap Index Scan",
            "Index Name": "credentials_user_order"}]}]}}]"#;
        let plan = QueryPlan::from_pg_json(bitmap.into()).unwrap();
        assert!(plan.uses_index("credentials_user_order"));
        assert!(!plan.uses_index("credentials_user"));
        assert!(plan.sorts());
        let seq = r#"[{"Plan": {"Node Type": "Seq Scan", "Relation Name": "credentials"}}]"#;
        assert!(QueryPlan::from_pg_json(seq.into()).unwrap().has_full_scan());
        assert!(QueryPlan::from_pg_json("{}".into()).is_err());
    }

    #[test]
    fn sqlite_steps() {
        let plan = QueryPlan::from_sqlite(vec![(
            3,
            0,
            0,
            "SEARCH credentials USING INDEX credentials_user_order (user_id=?)".into(),
        )]);
        assert!(plan.uses_index("credentials_user_order"));
        assert!(!plan.has_full_scan());
        let scan = QueryPlan::from_sqlite(vec![(2, 0, 0, "SCAN credentials".into())]);
        assert!(scan.has_full_scan());
        let covering = QueryPlan::from_sqlite(vec![(
            2,
            0,
            0,
            "SCAN credentials USING COVERING INDEX credentials_user_order".into(),
        )]);
        assert!(
            covering.has_full_scan(),
            "a SCAN reads every entry, index or not"
        );
        assert!(!covering.uses_index("credentials_user_order"));
        let sorted = QueryPlan::from_sqlite(vec![(9, 0, 0, "USE TEMP B-TREE FOR ORDER BY".into())]);
        assert!(sorted.sorts());
    }
}
