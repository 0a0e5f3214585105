use std::{
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Duration,
};

use tokio::process::{Child, Command};

/// A service binary running as a child process, its output going to a log file.
///
/// Dropping it kills the process (SIGKILL), so a failing test never leaves services behind.
#[derive(Debug)]
pub struct ServiceProcess {
    name: &'static str,
    child: Child,
    port: u16,
    log: PathBuf,
}

impl ServiceProcess {
    /// Starts `binary` with `env` (on top of a clean environment plus PATH), listening on
    /// `port`, logging to `log_dir/<name>.log`.
    pub fn spawn(
        binary: &Path,
        name: &'static str,
        port: u16,
        env: &[(String, String)],
        log_dir: &Path,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(log_dir)?;
        Self::spawn_logging_to(binary, name, port, env, log_dir.join(format!("{name}.log")))
    }

    /// Like [`ServiceProcess::spawn`], logging to `log`, which is appended to: a
    /// restarted process (same name, same port) keeps the log of its predecessor,
    /// so a failing test shows what happened before the crash as well as after.
    pub fn spawn_logging_to(
        binary: &Path,
        name: &'static str,
        port: u16,
        env: &[(String, String)],
        log: PathBuf,
    ) -> std::io::Result<Self> {
        if let Some(directory) = log.parent() {
            std::fs::create_dir_all(directory)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let child = Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
            .envs(
                env.iter()
                    .map(|(key, value)| (key.as_str(), value.as_str())),
            )
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()?;
        Ok(Self {
            name,
            child,
            port,
            log,
        })
    }

    /// The service's name (`registration`, …).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The port it listens on; a restart reuses it, so URLs stay valid.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id, while it runs: for reading its CPU time and memory in `/proc`.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where its JSON log lines go.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The log so far, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM (what `docker stop` sends) and waits up to `timeout` for the exit.
    pub async fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()?
            .ok()
    }

    /// SIGKILL: no chance to drain or ack.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn signal(&self, signal: &str) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args([format!("-{signal}"), pid.to_string()])
                .status();
        }
    }
}

/// A port that was free a moment ago. The service binds it right after; the window in
/// which another process could take it is small enough for tests.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("the loopback interface has free ports")
}
