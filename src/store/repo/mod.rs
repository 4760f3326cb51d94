//! Queries, one file per aggregate. Functions take a connection so the service layer can group
//! them in one transaction when a decision spans tables.

pub mod audit;
pub mod challenges;
pub mod credentials;
pub mod oauth;
pub mod purge;
pub mod sads;
pub mod tokens;
pub mod users;
