//! Listening sockets a supervisor passes in: `--listen-fd N`, or systemd's
//! socket activation (`LISTEN_FDS`, the first socket). With them, a restart
//! under systemd (or a scale-to-zero proxy holding the socket) loses no
//! connection: the socket stays open across the process.

use anyhow::{bail, Context, Result};

/// The inherited listening socket, if one was passed. Reads (and, for
/// `--listen-fd`, sets) the environment: call it before any thread starts.
pub(crate) fn inherited(listen_fd: Option<u32>) -> Result<Option<std::net::TcpListener>> {
    let (index, what) = match listen_fd {
        Some(fd) if fd < 3 => bail!(
            "--listen-fd {fd}: descriptors 0, 1 and 2 are stdin, stdout and stderr; pass \
             the socket as 3 or above"
        ),
        Some(fd) => {
            // `listenfd` reads systemd's protocol (sockets numbered from 3 on):
            // describe `fd` as the last of them. Single-threaded here.
            std::env::set_var("LISTEN_FDS", (fd - 2).to_string());
            std::env::remove_var("LISTEN_PID");
            (fd as usize - 3, format!("--listen-fd {fd}"))
        }
        None if std::env::var_os("LISTEN_FDS").is_some() => (0, "LISTEN_FDS".to_owned()),
        None => return Ok(None),
    };
    let mut fds = listenfd::ListenFd::from_env();
    let listener = fds
        .take_tcp_listener(index)
        .with_context(|| format!("{what}: not a TCP socket"))?
        .with_context(|| {
            format!("{what}: no socket was passed (LISTEN_PID names another process?)")
        })?;
    if fds.len() > index + 1 && listen_fd.is_none() {
        tracing::warn!(
            passed = fds.len(),
            "systemd passed several sockets; serving on the first only"
        );
    }
    // A bound socket that is not listening yet (systemd's `Accept=no` passes it
    // listening; another supervisor might not).
    socket2::SockRef::from(&listener)
        .listen(1024)
        .with_context(|| format!("{what}: cannot listen on the socket (is it bound?)"))?;
    Ok(Some(listener))
}
