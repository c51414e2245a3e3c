//! The host process: starting `wasi-http`/`wasmtime`, reading its output, killing it.

use super::*;

/// A running host; killed (SIGKILL) and reaped when dropped unless it has exited.
pub(crate) struct HostProcess {
    pub(crate) child: Child,
    pub(crate) status: Option<ExitStatus>,
    pub(crate) addresses: mpsc::UnboundedReceiver<SocketAddr>,
    pub(crate) log: Arc<Log>,
}

impl HostProcess {
    pub(crate) fn spawn(mut command: Command, log: Arc<Log>) -> Result<HostProcess, String> {
        let shown = std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|part| part.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        log.push(format!("[runner] $ {shown}"));
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| {
            format!(
                "cannot start the host `{}`: {e}",
                command.get_program().to_string_lossy()
            )
        })?;
        let (sender, addresses) = mpsc::unbounded_channel();
        if let Some(stdout) = child.stdout.take() {
            pump(stdout, "[stdout] ", log.clone(), sender.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            pump(stderr, "", log.clone(), sender);
        }
        Ok(HostProcess {
            child,
            status: None,
            addresses,
            log,
        })
    }

    /// The exit status, if the host has exited.
    pub(crate) fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.log.push(format!("[runner] the host exited: {status}"));
                self.status = Some(status);
            }
        }
        self.status
    }

    /// Waits for the `Serving HTTP on http://ADDR/` line.
    pub(crate) async fn wait_for_address(&mut self) -> Result<SocketAddr, String> {
        let mut closed = false;
        loop {
            tokio::select! {
                address = self.addresses.recv(), if !closed => match address {
                    Some(address) => return Ok(address),
                    None => closed = true,
                },
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    if let Ok(address) = self.addresses.try_recv() {
                        return Ok(address);
                    }
                    if let Some(status) = self.poll_exit() {
                        return Err(format!(
                            "the host exited ({status}) before printing `Serving HTTP on ...`"
                        ));
                    }
                }
            }
        }
    }

    pub(crate) async fn wait_exit(&mut self, limit: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.poll_exit() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the host did not exit within {} s",
                    limit.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) fn signal(&mut self, signal: &str) -> Result<(), String> {
        // An exited but unreaped child keeps its pid, so the pid cannot have been reused.
        if let Some(status) = self.poll_exit() {
            return Err(format!(
                "the host had already exited ({status}) before SIG{signal}"
            ));
        }
        let pid = self.child.id().to_string();
        self.log.push(format!("[runner] kill -s {signal} {pid}"));
        let output = Command::new("kill")
            .args(["-s", signal, &pid])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run `kill`: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "`kill -s {signal} {pid}` failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(())
    }

    /// Text to add to an error when the host may be the cause.
    pub(crate) fn exit_note(&mut self) -> String {
        match self.poll_exit() {
            Some(status) => format!(" (the host has exited: {status})"),
            None => String::new(),
        }
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        if self.poll_exit().is_none() {
            self.log
                .push("[runner] killing the host (SIGKILL)".to_owned());
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.status = Some(status);
            }
        }
    }
}

/// Copies a host output stream into the log on a thread, reporting any served address.
pub(crate) fn pump(
    stream: impl Read + Send + 'static,
    prefix: &'static str,
    log: Arc<Log>,
    addresses: mpsc::UnboundedSender<SocketAddr>,
) {
    log.open.fetch_add(1, Ordering::SeqCst);
    let thread_log = log.clone();
    let spawned = std::thread::Builder::new()
        .name("host-output".into())
        .spawn(move || {
            let mut reader = StdBufReader::new(stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader
                    .by_ref()
                    .take(LOG_LINE_MAX as u64 * 4)
                    .read_until(b'\n', &mut line)
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\r', '\n']);
                let address = parse_serving(text);
                thread_log.push(format!("{prefix}{text}"));
                if let Some(address) = address {
                    let _ = addresses.send(address);
                }
            }
            thread_log.open.fetch_sub(1, Ordering::SeqCst);
        });
    if spawned.is_err() {
        log.open.fetch_sub(1, Ordering::SeqCst);
        log.push("[runner] cannot start a thread to read the host's output".into());
    }
}

/// `... Serving HTTP on http://127.0.0.1:PORT/` -> the address.
pub(crate) fn parse_serving(line: &str) -> Option<SocketAddr> {
    const NEEDLE: &str = "Serving HTTP on ";
    let rest = &line[line.find(NEEDLE)? + NEEDLE.len()..];
    let rest = rest
        .strip_prefix("http://")
        .or_else(|| rest.strip_prefix("https://"))
        .unwrap_or(rest);
    let authority = rest.split(['/', ' ']).next()?;
    let mut address: SocketAddr = authority.parse().ok()?;
    if address.ip().is_unspecified() {
        address.set_ip(Ipv4Addr::LOCALHOST.into());
    }
    Some(address)
}

pub(crate) fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

pub(crate) fn host_command(
    args: &Args,
    world: World,
    component: &Path,
    env: &[String],
) -> Result<Command, String> {
    let mut command = Command::new(&args.bin);
    match (args.host, world) {
        (HostKind::WasiHttp, World::Service) => {
            command.args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--allow-network",
                "127.0.0.1/32",
            ]);
        }
        (HostKind::WasiHttp, World::Command) => {
            command.args(["run", "--allow-network", "127.0.0.1/32"]);
        }
        (HostKind::Wasmtime, World::Service) => {
            command.arg("serve").args(WASMTIME_FLAGS);
            command
                .arg("--addr")
                .arg(format!("127.0.0.1:{}", free_port()?));
        }
        (HostKind::Wasmtime, World::Command) => {
            command.arg("run").args(WASMTIME_FLAGS);
        }
    }
    for variable in env {
        command.arg("--env").arg(variable);
    }
    command.arg(component);
    Ok(command)
}
