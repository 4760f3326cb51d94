//! Load generation for `quill bench sign`: a minimal HTTP/1.1 keep-alive client over one
//! loopback `TcpStream` per worker (requests are built once, before the clock starts, so the
//! client costs the shared CPU as little as possible), and a closed-loop runner that drives
//! `threads` workers until a time limit or a call budget runs out, whichever comes first.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Largest answer the client reads (a signHash answer for 1000 RSA-3072 hashes is ~520 kB).
const MAX_ANSWER: usize = 8 << 20;

/// One keep-alive connection to the child server.
pub struct Http {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// A POST request, serialised once.
pub fn post_request(addr: SocketAddr, path: &str, auth: Option<&str>, body: &str) -> Vec<u8> {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl Http {
    pub fn connect(addr: SocketAddr) -> anyhow::Result<Http> {
        anyhow::ensure!(addr.ip().is_loopback(), "not a loopback address: {addr}");
        let stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        stream.set_write_timeout(Some(Duration::from_secs(120)))?;
        Ok(Http {
            reader: BufReader::with_capacity(64 * 1024, stream.try_clone()?),
            writer: stream,
        })
    }

    /// Send one serialised request; the status and the body of the answer.
    pub fn send(&mut self, request: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        self.writer.write_all(request)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("not an HTTP answer: {line:?}"))?;
        let mut length = None;
        loop {
            line.clear();
            anyhow::ensure!(self.reader.read_line(&mut line)? > 0, "connection closed");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(value.parse::<usize>()?);
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    anyhow::bail!("unexpected transfer-encoding {value}");
                }
            }
        }
        // 204 and 304 answers have no body (and actix-web sends no Content-Length with them).
        let length = match (status, length) {
            (204 | 304, _) => 0,
            (_, Some(length)) => length,
            (_, None) => anyhow::bail!("answer without Content-Length"),
        };
        anyhow::ensure!(length <= MAX_ANSWER, "answer of {length} bytes");
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, body))
    }

    /// POST a JSON value; the answer's JSON, which must come with a 2xx status.
    pub fn post_json(
        &mut self,
        addr: SocketAddr,
        path: &str,
        auth: Option<&str>,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let request = post_request(addr, path, auth, &body.to_string());
        let (status, answer) = self.send(&request)?;
        anyhow::ensure!(
            (200..300).contains(&status),
            "{path}: {status} {}",
            String::from_utf8_lossy(&answer)
        );
        Ok(serde_json::from_slice(&answer)?)
    }
}

/// When a scenario stops: after `duration`, or after `max_calls` calls (warm-up included).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub duration: Duration,
    pub max_calls: usize,
    /// Untimed calls per worker before the clock starts.
    pub warm_up: usize,
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Run {
    /// Per-call latency of every timed call, sorted.
    pub latencies: Vec<Duration>,
    /// Signatures (or flows) completed in the timed part.
    pub items: u64,
    /// From the common start to the end of the last worker.
    pub wall: Duration,
    /// Call indices used, warm-up included: they are `0..calls`.
    pub calls: usize,
}

impl Run {
    /// Add a later part of the same measurement (its latencies, items and wall time).
    pub fn absorb(&mut self, part: Run) {
        self.latencies.extend(part.latencies);
        self.latencies.sort_unstable();
        self.items += part.items;
        self.wall += part.wall;
        self.calls += part.calls;
    }

    pub fn rate(&self) -> f64 {
        self.items as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// The mean latency in milliseconds.
    pub fn mean_ms(&self) -> f64 {
        let total: Duration = self.latencies.iter().sum();
        total.as_secs_f64() * 1000.0 / self.latencies.len().max(1) as f64
    }

    /// The q-quantile (0..=1) of the latencies in milliseconds, nearest rank.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let n = self.latencies.len();
        let rank = ((n as f64) * q).ceil() as usize;
        self.latencies
            .get(rank.saturating_sub(1).min(n.saturating_sub(1)))
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0
    }
}

/// Run `threads` closed-loop workers. Each builds its state with `init(worker)` (connections
/// …), warms up, waits for the others, then calls `op(state, call_index)` — which returns the
/// items it completed — until the time or the call budget is spent. Call indices are handed out
/// once each across all workers, so `op` may consume prepared inputs by index.
pub fn run<S>(
    threads: usize,
    limits: Limits,
    init: impl Fn(usize) -> anyhow::Result<S> + Sync,
    op: impl Fn(&mut S, usize) -> anyhow::Result<u64> + Sync,
) -> anyhow::Result<Run> {
    let threads = threads.max(1);
    let next = AtomicUsize::new(0);
    let barrier = Barrier::new(threads + 1);
    let take = || {
        let i = next.fetch_add(1, Ordering::Relaxed);
        (i < limits.max_calls).then_some(i)
    };
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|w| {
                let (init, op, take, barrier) = (&init, &op, &take, &barrier);
                scope.spawn(move || -> anyhow::Result<(Vec<Duration>, u64, usize)> {
                    let mut calls = 0;
                    let prepared = init(w).and_then(|mut state| {
                        for _ in 0..limits.warm_up {
                            if let Some(i) = take() {
                                calls += 1;
                                op(&mut state, i)?;
                            }
                        }
                        Ok(state)
                    });
                    barrier.wait();
                    let mut state = prepared?;
                    let started = Instant::now();
                    let mut latencies = Vec::new();
                    let mut items = 0;
                    while started.elapsed() < limits.duration {
                        let Some(i) = take() else { break };
                        calls += 1;
                        let t = Instant::now();
                        items += op(&mut state, i)?;
                        latencies.push(t.elapsed());
                    }
                    Ok((latencies, items, calls))
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let mut out = Run::default();
        let mut first_error = None;
        for worker in workers {
            match worker.join() {
                Ok(Ok((latencies, items, calls))) => {
                    out.latencies.extend(latencies);
                    out.items += items;
                    out.calls += calls;
                }
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert(anyhow::anyhow!("a load worker panicked"));
                }
            }
        }
        out.wall = started.elapsed();
        out.latencies.sort_unstable();
        match first_error {
            Some(e) => Err(e),
            None => Ok(out),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_until_the_call_budget_and_hands_out_each_index_once() {
        let seen = std::sync::Mutex::new(Vec::new());
        let limits = Limits {
            duration: Duration::from_secs(30),
            max_calls: 50,
            warm_up: 2,
        };
        let run = run(
            3,
            limits,
            |_| Ok(()),
            |_, i| {
                seen.lock().unwrap().push(i);
                Ok(2)
            },
        )
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        assert_eq!(run.latencies.len(), 44);
        assert_eq!(run.items, 88);
        assert_eq!(run.calls, 50, "warm-up calls count as used indices");
        assert!(run.rate() > 0.0);
    }

    #[test]
    fn stops_on_time_and_reports_errors() {
        let limits = Limits {
            duration: Duration::from_millis(20),
            max_calls: usize::MAX,
            warm_up: 0,
        };
        let run = run(2, limits, |_| Ok(()), |_, _| Ok(1)).unwrap();
        assert!(run.items > 0 && run.quantile_ms(0.99) >= run.quantile_ms(0.5));
        let failed = super::run(2, limits, |_| Ok(()), |_, _| anyhow::bail!("no"));
        assert!(failed.is_err());
    }
}
