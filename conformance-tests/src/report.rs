//! Check results: a text table for people and JUnit XML for CI.

use std::fmt::Write as _;
use std::time::Duration;

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
    /// The server works as the spec requires, but a response (or a request the suite built
    /// from the server's values) is not what Quill's stricter `schema/` says: reported, and
    /// not a failure (the exit code stays 0).
    Warn,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
            Outcome::Warn => "WARN",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// What was checked, e.g. `signatures/signHash: malformed base64 hash`.
    pub name: String,
    /// The credential the check ran against, if any.
    pub credential: Option<String>,
    pub outcome: Outcome,
    /// Why it passed, failed or was skipped.
    pub detail: String,
    /// Time spent since the previous row was recorded.
    pub duration: Duration,
}

impl CheckResult {
    /// `name [credential]`.
    pub fn label(&self) -> String {
        match &self.credential {
            Some(c) => format!("{} [{c}]", self.name),
            None => self.name.clone(),
        }
    }
}

/// Every check of one run, in the order they ran.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub base_url: String,
    pub results: Vec<CheckResult>,
}

impl Report {
    pub fn new(base_url: &str) -> Report {
        Report {
            base_url: base_url.to_string(),
            results: Vec::new(),
        }
    }

    pub fn count(&self, outcome: Outcome) -> usize {
        self.results.iter().filter(|r| r.outcome == outcome).count()
    }

    /// The rows that failed.
    pub fn failures(&self) -> Vec<&CheckResult> {
        self.results
            .iter()
            .filter(|r| r.outcome == Outcome::Fail)
            .collect()
    }

    /// Every row with this name (one per credential for per-credential checks).
    pub fn named(&self, name: &str) -> Vec<&CheckResult> {
        self.results.iter().filter(|r| r.name == name).collect()
    }

    /// 1 when a check failed, else 0 (2 is for usage and connection errors, decided earlier).
    pub fn exit_code(&self) -> i32 {
        if self.count(Outcome::Fail) > 0 { 1 } else { 0 }
    }

    /// `check | result | detail`, one line per check, and a summary line.
    pub fn table(&self) -> String {
        let rows: Vec<(String, &str, String)> = self
            .results
            .iter()
            .map(|r| (r.label(), r.outcome.as_str(), one_line(&r.detail)))
            .collect();
        let width = rows
            .iter()
            .map(|(l, _, _)| l.chars().count())
            .chain(std::iter::once("check".len()))
            .max()
            .unwrap_or(5);
        let mut out = String::new();
        let _ = writeln!(out, "{:<width$} | result | detail", "check");
        let _ = writeln!(out, "{}-+--------+-{}", "-".repeat(width), "-".repeat(40));
        for (label, outcome, detail) in rows {
            let _ = writeln!(out, "{label:<width$} | {outcome:<6} | {detail}");
        }
        let _ = writeln!(
            out,
            "{} passed, {} failed, {} skipped, {} warned",
            self.count(Outcome::Pass),
            self.count(Outcome::Fail),
            self.count(Outcome::Skip),
            self.count(Outcome::Warn)
        );
        out
    }

    /// JUnit XML: one `<testsuite>` with a `<testcase>` per check, `<failure>` for FAIL,
    /// `<skipped/>` for SKIP, and for WARN a passed case whose output starts `WARN:`.
    pub fn junit(&self) -> String {
        let total: f64 = self.results.iter().map(|r| r.duration.as_secs_f64()).sum();
        let (tests, failures, skipped) = (
            self.results.len(),
            self.count(Outcome::Fail),
            self.count(Outcome::Skip),
        );
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"csc-conformance\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{total:.3}\">"
        );
        let _ = writeln!(
            out,
            "  <testsuite name=\"csc-conformance\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{total:.3}\">"
        );
        let _ = writeln!(
            out,
            "    <properties>\n      <property name=\"base_url\" value=\"{}\"/>\n    </properties>",
            xml_escape(&self.base_url)
        );
        for r in &self.results {
            let group = r.name.split(':').next().unwrap_or(&r.name).trim();
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                xml_escape(&format!("csc-conformance.{group}")),
                xml_escape(&r.label()),
                r.duration.as_secs_f64()
            );
            let detail = xml_escape(&r.detail);
            match r.outcome {
                // JUnit has no warnings: a passed case that says so.
                Outcome::Warn => {
                    let _ = writeln!(
                        out,
                        ">\n      <system-out>WARN: {detail}</system-out>\n    </testcase>"
                    );
                }
                Outcome::Pass => {
                    let _ = writeln!(
                        out,
                        ">\n      <system-out>{detail}</system-out>\n    </testcase>"
                    );
                }
                Outcome::Fail => {
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"{}\" type=\"FAIL\">{detail}</failure>\n    </testcase>",
                        xml_escape(&one_line(&r.detail))
                    );
                }
                Outcome::Skip => {
                    let _ = writeln!(
                        out,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        xml_escape(&one_line(&r.detail))
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n</testsuites>\n");
        out
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Escape text for XML content and attribute values; characters XML 1.0 cannot carry at all
/// become U+FFFD.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, outcome: Outcome, detail: &str) -> CheckResult {
        CheckResult {
            name: name.into(),
            credential: Some("c-1".into()),
            outcome,
            detail: detail.into(),
            duration: Duration::from_millis(5),
        }
    }

    #[test]
    fn junit_escapes_and_counts() {
        let mut r = Report::new("http://x/?a=1&b=<2>");
        r.results.push(row("a: ok", Outcome::Pass, "fine"));
        r.results
            .push(row("b: <bad> & \"worse\"", Outcome::Fail, "got 'x'\n\u{1}"));
        r.results.push(row("c", Outcome::Skip, "not advertised"));
        r.results
            .push(row("schema: d", Outcome::Warn, "stricter than the spec"));
        let x = r.junit();
        assert!(x.contains("tests=\"4\" failures=\"1\" errors=\"0\" skipped=\"1\""));
        assert!(x.contains("<system-out>WARN: stricter than the spec</system-out>"));
        assert!(x.contains("name=\"b: &lt;bad&gt; &amp; &quot;worse&quot; [c-1]\""));
        assert!(x.contains("got &apos;x&apos;&#10;\u{FFFD}</failure>"));
        assert!(x.contains("<skipped message=\"not advertised\"/>"));
        assert!(x.contains("value=\"http://x/?a=1&amp;b=&lt;2&gt;\""));
        assert_eq!(x.matches("<testcase ").count(), 4);
        assert_eq!(r.exit_code(), 1);
        let t = r.table();
        assert!(t.contains("| FAIL   | got 'x'"), "{t}");
        assert!(t.contains("| WARN   | stricter"), "{t}");
        assert!(t.ends_with("1 passed, 1 failed, 1 skipped, 1 warned\n"));
        // Warnings alone fail nothing.
        r.results.remove(1);
        assert_eq!(r.exit_code(), 0);
    }
}
