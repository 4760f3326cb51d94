//! `quill audit verify` (recompute the hash chain, report the first broken record, exit ≠ 0 if
//! any) and `quill audit export --since T` (JSON lines).

use clap::Subcommand;

use crate::config::StoreArgs;
use crate::store::{Store, repo};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the whole chain; prints {"records", "first_broken", "head"}. Keep `head` (as
    /// SEQ:HASH) outside the database and pass it to a later check with --anchor.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// A head printed by an earlier check (SEQ:HASH): the chain must still hold that
        /// record unchanged, which catches records deleted from the end or a chain written
        /// anew. Repeatable.
        #[arg(long, value_name = "SEQ:HASH")]
        anchor: Vec<repo::audit::Anchor>,
    },
    /// Print records as JSON lines.
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// Only records at or after this time: Unix seconds or RFC 3339.
        #[arg(long, default_value = "0")]
        since: String,
    },
}

fn parse_since(s: &str) -> anyhow::Result<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| anyhow::anyhow!("--since takes Unix seconds or an RFC 3339 time"))?;
    Ok(t.unix_timestamp())
}

pub fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify { store, anchor } => {
            let store = Store::open_existing(&store.database_url, 1)?;
            let v = store.with(repo::audit::verify)?;
            println!("{}", serde_json::to_string(&v)?);
            if let Some(seq) = v.first_broken {
                anyhow::bail!("audit chain broken at record {seq}");
            }
            for a in &anchor {
                if !store.with(|c| repo::audit::anchored(c, a))? {
                    anyhow::bail!(
                        "the audit chain no longer holds record {} as anchored: records were \
                         deleted from its end or the chain was written anew",
                        a.seq
                    );
                }
            }
            Ok(())
        }
        AuditCommand::Export { store, since } => {
            let since = parse_since(&since)?;
            let store = Store::open_existing(&store.database_url, 1)?;
            let records = store.with(|c| repo::audit::since(c, since))?;
            write_lines(&mut std::io::stdout().lock(), &records)
        }
    }
}

/// One JSON line per record. A reader that stops early (`| head`) ends the export quietly,
/// as it does for other Unix tools; any other write error is one.
fn write_lines<W: std::io::Write, T: serde::Serialize>(
    out: &mut W,
    records: &[T],
) -> anyhow::Result<()> {
    let mut write = || -> std::io::Result<()> {
        for r in records {
            serde_json::to_writer(&mut *out, r)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    };
    match write() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod write_tests {
    use super::write_lines;

    /// A writer whose reader went away after `room` bytes.
    struct Closed {
        room: usize,
        got: Vec<u8>,
    }

    impl std::io::Write for Closed {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.got.len() + buf.len() > self.room {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            self.got.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_reader_that_goes_away_ends_the_export_quietly() {
        let records: Vec<serde_json::Value> =
            (0..100).map(|i| serde_json::json!({ "seq": i })).collect();
        let mut out = Closed {
            room: 40,
            got: Vec::new(),
        };
        write_lines(&mut out, &records).unwrap();
        assert!(
            String::from_utf8(out.got)
                .unwrap()
                .starts_with("{\"seq\":0}\n")
        );
        let mut all = Vec::new();
        write_lines(&mut all, &records).unwrap();
        assert_eq!(all.iter().filter(|&&b| b == b'\n').count(), 100);
        struct Full;
        impl std::io::Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::StorageFull.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        assert!(
            write_lines(&mut Full, &records).is_err(),
            "other errors are errors"
        );
    }
}
