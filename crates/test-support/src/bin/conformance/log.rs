//! Per-case logs: what the host and the origins printed, shown when a case fails.

use super::*;

/// Lines of output, most recent kept.
#[derive(Default)]
pub(crate) struct Log {
    pub(crate) lines: Mutex<VecDeque<String>>,
    /// Host output streams still being read.
    pub(crate) open: AtomicUsize,
}

impl Log {
    pub(crate) fn push(&self, mut line: String) {
        if line.len() > LOG_LINE_MAX {
            let mut cut = LOG_LINE_MAX;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" [...]");
        }
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() >= LOG_LINES_KEPT {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        lines.iter().cloned().collect()
    }
}

pub(crate) struct Case {
    pub(crate) stage: Mutex<String>,
    pub(crate) host_log: Arc<Log>,
    pub(crate) origin_log: Arc<Log>,
}

impl Case {
    pub(crate) fn new() -> Case {
        Case {
            stage: Mutex::new(String::from("starting")),
            host_log: Arc::new(Log::default()),
            origin_log: Arc::new(Log::default()),
        }
    }

    pub(crate) fn set_stage(&self, stage: impl Into<String>) {
        *self.stage.lock().unwrap_or_else(PoisonError::into_inner) = stage.into();
    }

    pub(crate) fn stage(&self) -> String {
        self.stage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits (briefly) until the host's output has been read to the end.
    pub(crate) async fn drain(&self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.host_log.open.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(crate) fn print_logs(&self) {
        print_tail("host output", &self.host_log.lines());
        print_tail("origin requests", &self.origin_log.lines());
    }
}

pub(crate) fn print_tail(title: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let shown = &lines[lines.len().saturating_sub(LOG_LINES_SHOWN)..];
    if shown.len() < lines.len() {
        println!(
            "    {title} (last {} of {} lines):",
            shown.len(),
            lines.len()
        );
    } else {
        println!("    {title}:");
    }
    for line in shown {
        println!("    | {line}");
    }
}
