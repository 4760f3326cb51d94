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
    /// Call indices used, warm-up included: they are `0..calls`.
    pub calls: usize,
    /// The measuring window: from the common start to the time limit, or to the last answer
    /// when the call budget ran out first.
    pub window: Duration,
    /// Items completed within the window, a call that straddles its end counted for the part
    /// of it inside (see [`window_items`]).
    pub window_items: f64,
}

/// One timed call: when it started and ended (from the run's start) and the items it completed.
type Span = (Duration, Duration, u64);

/// What one worker measured: latencies, items, calls, its start and its timed calls.
type WorkerRun = (Vec<Duration>, u64, usize, Instant, Vec<Span>);

/// Items completed by `spans` within `[0, end]`, a call that straddles `end` counted in
/// proportion to its part before `end` (a 100-hash call signs at an even pace). A rate over the
/// window then measures what the workers did together: dividing all items by the time the last
/// worker finished would count, at two workers with long calls, the stretch in which one waits
/// for the other's last call as if both had been working.
pub fn window_items(spans: &[Span], end: Duration) -> f64 {
    spans
        .iter()
        .map(|&(t0, t1, n)| {
            if t1 <= end {
                n as f64
            } else if t0 >= end {
                0.0
            } else {
                n as f64 * (end - t0).as_secs_f64() / (t1 - t0).as_secs_f64()
            }
        })
        .sum()
}

impl Run {
    /// Add a later part of the same measurement (its latencies, items and wall time).
    pub fn absorb(&mut self, part: Run) {
        self.latencies.extend(part.latencies);
        self.latencies.sort_unstable();
        self.items += part.items;
        self.calls += part.calls;
        self.window += part.window;
        self.window_items += part.window_items;
    }

    /// Items per second within the measuring window.
    pub fn rate(&self) -> f64 {
        self.window_items / self.window.as_secs_f64().max(1e-9)
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
                scope.spawn(move || -> anyhow::Result<WorkerRun> {
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
                    let mut spans = Vec::new();
                    let mut items = 0;
                    while started.elapsed() < limits.duration {
                        let Some(i) = take() else { break };
                        calls += 1;
                        let t = Instant::now();
                        let n = op(&mut state, i)?;
                        let took = t.elapsed();
                        items += n;
                        latencies.push(took);
                        spans.push((t - started, t - started + took, n));
                    }
                    Ok((latencies, items, calls, started, spans))
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let mut out = Run::default();
        let mut first_error = None;
        let mut timed = Vec::new();
        for worker in workers {
            match worker.join() {
                Ok(Ok((latencies, items, calls, worker_start, spans))) => {
                    out.latencies.extend(latencies);
                    out.items += items;
                    out.calls += calls;
                    timed.push((worker_start, spans));
                }
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert(anyhow::anyhow!("a load worker panicked"));
                }
            }
        }
        out.latencies.sort_unstable();
        // Every span relative to the earliest worker start (they start within microseconds).
        let origin = timed.iter().map(|(s, _)| *s).min().unwrap_or(started);
        let spans: Vec<Span> = timed
            .iter()
            .flat_map(|(s, spans)| {
                let shift = *s - origin;
                spans
                    .iter()
                    .map(move |&(t0, t1, n)| (t0 + shift, t1 + shift, n))
            })
            .collect();
        let last = spans.iter().map(|s| s.1).max().unwrap_or_default();
        out.window = last.min(limits.duration);
        out.window_items = window_items(&spans, out.window);
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
        // The budget ran out long before the time limit: the window ends at the last answer.
        assert!(run.window < Duration::from_secs(30));
        assert_eq!(run.window_items, 88.0);
        assert!(run.rate() > 0.0);
    }

    #[test]
    fn the_window_counts_what_happened_before_its_end() {
        let ms = Duration::from_millis;
        // Two workers, 50 ms: one makes five 10 ms calls, the other a 35 ms call and one from
        // 35 to 70 ms — three sevenths of which fall inside. Dividing all seven by the 70 ms the
        // last worker took would say 100/s; the two did 128.6/s together.
        let spans = [
            (ms(0), ms(10), 1),
            (ms(10), ms(20), 1),
            (ms(20), ms(30), 1),
            (ms(30), ms(40), 1),
            (ms(40), ms(50), 1),
            (ms(0), ms(35), 1),
            (ms(35), ms(70), 1),
        ];
        let inside = window_items(&spans, ms(50));
        assert!((inside - (6.0 + 15.0 / 35.0)).abs() < 1e-9, "{inside}");
        // A 100-item call counts by the part before the end; nothing after the end counts.
        assert!((window_items(&[(ms(40), ms(60), 100)], ms(50)) - 50.0).abs() < 1e-9);
        assert_eq!(window_items(&[(ms(50), ms(60), 100)], ms(50)), 0.0);
        assert_eq!(window_items(&spans, ms(70)), 7.0);
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
