//! Child processes for tests: killed when dropped, their output in a log file whose tail is printed when the
//! test fails; stdout lines read with bounded waits; commands run to completion with a bound; the workspace's
//! binaries in the target directory; a test directory kept for inspection when the test fails.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `target/<profile>/`, from this test executable's path (`target/<profile>/deps/<test>-…`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    let deps = exe.parent().expect("test executable has a directory");
    deps.parent().expect("target/<profile>/deps has a parent").to_path_buf()
}

/// A workspace binary (or library) in the target directory, or `None`.
pub fn artifact(name: &str) -> Option<PathBuf> {
    let path = target_dir().join(name);
    path.is_file().then_some(path)
}

/// A workspace binary that must exist: panics naming it and how to build it otherwise.
pub fn binary(name: &str) -> PathBuf {
    artifact(name).unwrap_or_else(|| {
        panic!(
            "{name} not found in {}: build the workspace's binaries first (`cargo test --workspace --release` does; \
             with `-p <one package>` alone run `cargo build --release --workspace` before)",
            target_dir().display()
        )
    })
}

/// A path as `&str` (the test directories are UTF-8).
pub fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A child process that is killed when dropped; its stderr (and, unless piped, stdout) goes to a log file whose
/// tail is printed when the test fails.
#[derive(Debug)]
pub struct Proc {
    /// What the process is, in messages and log names.
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Starts `command` with stdout piped (see [`Proc::stdout_lines`]) or logged, stderr logged, in a new log
    /// file under `logs`.
    pub fn spawn(name: &str, mut command: Command, logs: &Path, pipe_stdout: bool) -> Proc {
        let log = unique_log(logs, name);
        let file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let out: Stdio =
            if pipe_stdout { Stdio::piped() } else { file.try_clone().expect("clone the log file").into() };
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        Proc { name: name.to_owned(), child: Some(child), log }
    }

    /// Lines of the piped stdout, read by a thread of their own.
    pub fn stdout_lines(&mut self) -> Lines {
        let stdout = self.child.as_mut().and_then(|c| c.stdout.take()).expect("stdout was piped and not taken yet");
        Lines::from_reader(stdout, &self.name)
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// The process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9`, and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits (bounded) for the exit; SIGKILL if it does not come (then `None`).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the log, with a header naming the process.
    pub fn tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        let start = all.len().saturating_sub(lines);
        format!("---- {} ({}) ----\n{}", self.name, self.log.display(), all[start..].join("\n"))
    }

    /// Whether the log contains `needle` (e.g. a broker's "Client x disconnected").
    pub fn log_contains(&self, needle: &str) -> bool {
        self.log_text().contains(needle)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.tail(30));
        }
    }
}

fn unique_log(dir: &Path, name: &str) -> PathBuf {
    (0..)
        .map(|i| dir.join(if i == 0 { format!("{name}.log") } else { format!("{name}.{i}.log") }))
        .find(|p| !p.exists())
        .expect("a free log name")
}

/// Lines from a child's stdout, with bounded waits, remembered for the failure report.
#[derive(Debug)]
pub struct Lines {
    name: String,
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    /// Lines of `reader`, read by a thread of their own; `name` labels them in the failure report.
    pub fn from_reader(reader: impl std::io::Read + Send + 'static, name: &str) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines { name: name.to_owned(), rx, seen: Vec::new() }
    }

    /// The next line within `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Option<String> {
        let line = self.rx.recv_timeout(timeout).ok()?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// Every line that arrives within `quiet` of the previous one.
    pub fn drain(&mut self, quiet: Duration) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(line) = self.next(quiet) {
            out.push(line);
        }
        out
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.seen.is_empty() {
            let start = self.seen.len().saturating_sub(20);
            eprintln!("---- {} stdout ----\n{}", self.name, self.seen[start..].join("\n"));
        }
    }
}

/// Runs a command to completion (at most 60 s, then it is killed and the test fails) and returns its output.
pub fn run(what: &str, mut command: Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let start = Instant::now();
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output { status, stdout: out_thread.join().unwrap_or_default(), stderr: err_thread.join().unwrap_or_default() }
}

/// Like [`run`], and asserts success; its stdout.
pub fn run_ok(what: &str, command: Command) -> String {
    let out = run(what, command);
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh temporary directory for one test, kept (its path printed) when the test fails.
#[derive(Debug)]
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
}

impl TestDir {
    /// `smqtt-<name>-XXXX` in the temporary directory.
    pub fn new(name: &str) -> TestDir {
        let dir = tempfile::Builder::new().prefix(&format!("smqtt-{name}-")).tempdir().expect("tempdir");
        TestDir { dir: Some(dir) }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.as_ref().map(tempfile::TempDir::path).expect("directory present")
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                eprintln!("test directory kept for inspection: {}", dir.keep().display());
            }
        }
    }
}
