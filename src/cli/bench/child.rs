//! The `quill serve` child process both benchmarks measure: started from the running executable
//! with the caller's settings, listening on 127.0.0.1:0, killed and reaped when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

pub struct ServeChild {
    child: Child,
    /// Where it listens (always a loopback address).
    pub addr: SocketAddr,
    /// Spawn to its `{"listening": …}` line.
    pub cold_start: Duration,
    // Kept open so the server never writes into a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServeChild {
    /// `quill [global] serve --listen 127.0.0.1:0 [serve]`, with `configure` adding flags and
    /// environment; waits for the startup line.
    pub fn start(
        global: &[&str],
        configure: impl FnOnce(&mut Command) -> &mut Command,
    ) -> anyhow::Result<ServeChild> {
        let exe = std::env::current_exe().context("cannot find the quill executable")?;
        let mut cmd = Command::new(exe);
        cmd.args(global)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env(
                "QUILL_LOG",
                std::env::var("QUILL_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env_remove("QUILL_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        configure(&mut cmd);
        let started = Instant::now();
        let mut child = cmd.spawn().context("cannot start quill serve")?;
        let stdout = child.stdout.take();
        let mut server = ServeChild {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            cold_start: Duration::ZERO,
            _stdout: BufReader::new(
                stdout.ok_or_else(|| anyhow::anyhow!("no stdout from quill serve"))?,
            ),
        };
        let mut line = String::new();
        server._stdout.read_line(&mut line)?;
        server.cold_start = started.elapsed();
        let printed: Value = serde_json::from_str(&line)
            .with_context(|| format!("quill serve did not start (it printed {line:?})"))?;
        server.addr = printed
            .get("listening")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow::anyhow!("quill serve printed {line:?}"))?
            .parse()?;
        anyhow::ensure!(
            server.addr.ip().is_loopback(),
            "quill serve is not on loopback: {}",
            server.addr
        );
        Ok(server)
    }

    /// Peak resident set (VmHWM) so far, MiB.
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no VmHWM in /proc/PID/status"))?;
        Ok(kib / 1024.0)
    }
}
