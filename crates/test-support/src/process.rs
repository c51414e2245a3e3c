//! `wasi-http serve` child processes and free loopback addresses.

use super::*;

/// A `wasi-http serve` child process; killed on drop.
pub struct ServeProcess {
    child: Child,
    /// The address it printed.
    pub addr: SocketAddr,
    /// The metrics address it printed, if it serves metrics.
    pub metrics_addr: Option<SocketAddr>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl ServeProcess {
    /// Spawns `bin serve ARGS --addr 127.0.0.1:0` and waits for its listening line.
    pub fn spawn(bin: &str, args: &[&str]) -> ServeProcess {
        ServeProcess::spawn_logging(bin, args, "info")
    }

    /// Like [`spawn`](Self::spawn) with `RUST_LOG` set to `filter`.
    pub fn spawn_logging(bin: &str, args: &[&str], filter: &str) -> ServeProcess {
        ServeProcess::spawn_full(&[], bin, args, filter, &[])
    }

    /// Like [`spawn`](Self::spawn) with these environment variables set.
    pub fn spawn_with_env(bin: &str, args: &[&str], env: &[(&str, &str)]) -> ServeProcess {
        ServeProcess::spawn_full(&[], bin, args, "info", env)
    }

    /// Like [`spawn`](Self::spawn), run through `wrapper` (a command and its
    /// arguments, given `BIN serve ARGS...` after them), e.g. one that passes
    /// the server a socket.
    pub fn spawn_wrapped(wrapper: &[&str], bin: &str, args: &[&str]) -> ServeProcess {
        ServeProcess::spawn_full(wrapper, bin, args, "info", &[])
    }

    /// Like [`spawn`](Self::spawn) with at most `limit` open file descriptors
    /// (soft and hard, through util-linux's `prlimit`).
    pub fn spawn_with_fd_limit(bin: &str, args: &[&str], limit: u32) -> ServeProcess {
        let nofile = format!("--nofile={limit}:{limit}");
        ServeProcess::spawn_full(&["prlimit", &nofile, "--"], bin, args, "info", &[])
    }

    fn spawn_full(
        wrapper: &[&str],
        bin: &str,
        args: &[&str],
        filter: &str,
        env: &[(&str, &str)],
    ) -> ServeProcess {
        let mut command = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let mut child = command
            .arg("serve")
            .args(args)
            .args(["--addr", "127.0.0.1:0"])
            .envs(env.iter().copied())
            .env("RUST_LOG", filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wasi-http");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = lines.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            let mut metrics = None;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("Metrics on http://") {
                    metrics = rest.trim_end_matches("/metrics").parse::<SocketAddr>().ok();
                }
                let serving = line
                    .strip_prefix("Serving HTTP on http://")
                    .or_else(|| line.strip_prefix("Serving HTTP on https://"));
                if let Some(rest) = serving {
                    if let (Some(sender), Ok(addr)) = (
                        tx.as_ref(),
                        rest.trim_end_matches('/').parse::<SocketAddr>(),
                    ) {
                        let _ = sender.send((addr, metrics));
                        tx = None;
                    }
                }
                sink.lock().expect("stderr lines").push(line);
            }
        });
        let (addr, metrics_addr) = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "wasi-http serve did not start; stderr:\n{}",
                    lines.lock().expect("stderr lines").join("\n")
                );
            }
        };
        ServeProcess {
            child,
            addr,
            metrics_addr,
            stderr: lines,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lines").join("\n")
    }

    /// Sends SIGINT (graceful shutdown) and waits for the exit status.
    pub fn interrupt(self) -> std::process::ExitStatus {
        self.signal("INT")
    }

    /// Sends the signal `name` (e.g. `TERM`) and waits for the exit status.
    pub fn signal(mut self, name: &str) -> std::process::ExitStatus {
        self.send_signal(name);
        self.child.wait().expect("wait")
    }

    /// Sends the signal `name` and returns at once.
    pub fn send_signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status();
    }

    /// `GET path` over a new HTTP/1.1 connection; panics if no response comes.
    pub async fn get(&self, path: &str) -> Collected {
        send(
            self.addr,
            get(&format!("http://{}{path}", self.addr), &[]),
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Waits up to 5 s for a stderr line containing `needle` (server workers write
    /// their log lines in batches, up to 100 ms after the event); returns whether
    /// one came.
    pub fn wait_for_log(&self, needle: &str) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if self.stderr().contains(needle) {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to 5 s until `n` stderr lines contain `needle` (lines from different
    /// workers may come out of order); returns those lines.
    pub fn wait_for_log_lines(&self, needle: &str, n: usize) -> Vec<String> {
        self.wait_for_log_lines_within(needle, n, Duration::from_secs(5))
    }

    /// Like [`wait_for_log_lines`](Self::wait_for_log_lines), waiting up to `within`.
    pub fn wait_for_log_lines_within(
        &self,
        needle: &str,
        n: usize,
        within: Duration,
    ) -> Vec<String> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let lines: Vec<String> = self
                .stderr()
                .lines()
                .filter(|l| l.contains(needle))
                .map(str::to_owned)
                .collect();
            if lines.len() >= n || std::time::Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls `/metrics` until `series` satisfies `done` or `within` passes; returns
    /// the last value seen.
    pub async fn wait_for_metric(
        &self,
        series: &str,
        done: impl Fn(f64) -> bool,
        within: Duration,
    ) -> Option<f64> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let value = self.metric(series).await;
            if value.is_some_and(&done) || std::time::Instant::now() > deadline {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the process to exit on its own.
    pub fn wait(mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait")
    }

    /// Resident memory now, in KiB (Linux; 0 elsewhere).
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kib| kib.parse().ok())
            })
            .unwrap_or(0)
    }

    /// Fetches `/metrics` and returns the value of the sample line starting with
    /// `series` (e.g. `wasi_http_requests_in_flight`).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let addr = self.metrics_addr?;
        let r = send(addr, get(&format!("http://{addr}/metrics"), &[]), false)
            .await
            .ok()?;
        r.text()
            .lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address with a port free right now (for a second listener).
pub fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").to_string()
}

/// A loopback port bound but never listening: connecting to it is refused for as
/// long as this value lives, and no other test can take the port meanwhile (a port
/// merely found free can be reused by a parallel test's server).
pub struct RefusingPort {
    _socket: tokio::net::TcpSocket,
    /// `127.0.0.1:PORT`.
    pub addr: std::net::SocketAddr,
}

impl RefusingPort {
    /// Binds a fresh loopback port without listening on it.
    pub fn new() -> RefusingPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        let addr = socket.local_addr().expect("addr");
        RefusingPort {
            _socket: socket,
            addr,
        }
    }
}

impl Default for RefusingPort {
    fn default() -> Self {
        RefusingPort::new()
    }
}

/// Runs `bin serve ARGS` expecting it to fail at startup; returns its stderr.
pub fn serve_failure(bin: &str, args: &[&str]) -> String {
    let output = Command::new(bin)
        .arg("serve")
        .args(args)
        .args(["--addr", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .output()
        .expect("run wasi-http");
    assert!(!output.status.success(), "expected a startup failure");
    String::from_utf8_lossy(&output.stderr).into_owned()
}
