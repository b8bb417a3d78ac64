//! The QEMU guest runner: boots the 6.12 kernel under TCG on the host's root and runs a script.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{GuestReport, Result, TestbedError};
use crate::initramfs::{ensure_initramfs, ensure_module_cache};
use crate::kernel::{find_guest_kernel, GuestKernel};
use crate::util::{shell_quote, tail_file, tail_lines, FileLock, TempDir};

/// The QEMU binary the runner starts.
pub const QEMU: &str = "qemu-system-x86_64";

/// Lines of the kernel log (and of the guest output) quoted in a failure.
pub const LOG_TAIL_LINES: usize = 40;

/// Guest output kept in [`GuestOutcome::stdout`]; the rest is still streamed, then dropped.
pub const MAX_STDOUT_BYTES: usize = 16 * 1024 * 1024;

/// Poll interval while waiting for QEMU to exit.
const WAIT_POLL: Duration = Duration::from_millis(20);

/// The file every guest boot locks, so that only one guest runs at a time on the machine.
pub fn guest_lock_path() -> PathBuf {
    std::env::temp_dir().join("pnfs-testbed-guest.lock")
}

/// The guest-side shell library (`tests/guest/lib.sh`), sourced before every script.
pub const GUEST_LIB: &str = include_str!("../../guest/lib.sh");
const STAGE2: &str = include_str!("guest/stage2.sh");
const PRELUDE: &str = include_str!("guest/prelude.sh");

/// Marker lines the guest prelude prints on the console.
const STEP_MARKER: &str = "@@pnfs-step ";
const STARTED_MARKER: &str = "@@pnfs-started";
const FAILED_MARKER: &str = "@@pnfs-failed ";

/// What to run in the guest.
#[derive(Debug, Clone)]
pub struct GuestScript {
    /// A name for progress lines (e.g. the test's name).
    pub name: String,
    /// Bash source, run as root with `set -eEo pipefail` after the prelude and `tests/guest/lib.sh`.
    pub script: String,
    /// Wall-clock limit for the whole boot (kernel + script + power-off); QEMU is killed after it.
    pub timeout: Duration,
    /// Environment variables exported before the script (names `[A-Za-z_][A-Za-z0-9_]*`).
    pub env: Vec<(String, String)>,
    /// Extra host shell files sourced after `lib.sh` (the host's `/` is the guest's `/`).
    pub sources: Vec<PathBuf>,
    /// Guest memory.
    pub memory_mib: u32,
    /// Guest CPUs.
    pub cpus: u32,
}

impl GuestScript {
    /// A script with the defaults: 1 GiB, 2 CPUs, a 600 s timeout (a guard against hangs;
    /// boots take 5-10 s on an idle 2-core machine but over a minute on an overloaded one).
    pub fn new(script: impl Into<String>) -> GuestScript {
        GuestScript {
            name: "guest".to_owned(),
            script: script.into(),
            timeout: Duration::from_secs(600),
            env: Vec::new(),
            sources: Vec::new(),
            memory_mib: 1024,
            cpus: 2,
        }
    }

    /// Sets the name shown in progress lines.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Adds a host shell file to source before the script.
    pub fn source(mut self, path: impl Into<PathBuf>) -> Self {
        self.sources.push(path.into());
        self
    }

    /// Sets the number of guest CPUs.
    pub fn cpus(mut self, cpus: u32) -> Self {
        self.cpus = cpus;
        self
    }

    /// Sets the guest memory.
    pub fn memory_mib(mut self, memory_mib: u32) -> Self {
        self.memory_mib = memory_mib;
        self
    }
}

/// How long one step took (host clock, from its marker to the next marker or the end).
#[derive(Debug, Clone, PartialEq)]
pub struct StepTiming {
    /// The step's name as given to `step`.
    pub name: String,
    /// Its duration.
    pub duration: Duration,
}

/// A successful guest run (exit code 0).
#[derive(Debug)]
pub struct GuestOutcome {
    /// The script's exit code (always 0: other codes are [`TestbedError::GuestFailed`]).
    pub exit_code: i32,
    /// Everything the script printed (stdout and stderr, interleaved, `\r` removed), up to
    /// [`MAX_STDOUT_BYTES`].
    pub stdout: String,
    /// The steps in order, with their durations.
    pub steps: Vec<StepTiming>,
    /// From QEMU start to the script's first line.
    pub boot_time: Duration,
    /// From QEMU start to QEMU exit.
    pub elapsed: Duration,
    /// Time spent waiting for the machine-wide guest lock before QEMU started.
    pub lock_wait: Duration,
    /// The host directory the guest saw as `/out` (files the script left there).
    pub out_dir: PathBuf,
    /// The guest kernel log (serial console) on the host.
    pub kernel_log: PathBuf,
    run_dir: TempDir,
}

impl GuestOutcome {
    /// The host path of `/out/<name>` in the guest.
    pub fn out_file(&self, name: &str) -> PathBuf {
        self.out_dir.join(name)
    }

    /// Keeps the run directory (out dir, kernel log) after drop; returns its path.
    pub fn keep(&mut self) -> PathBuf {
        self.run_dir.keep()
    }
}

/// Boots guests. Cheap to create once the initramfs is cached.
///
/// See the crate docs for an example.
#[derive(Debug, Clone)]
pub struct GuestRunner {
    kernel: GuestKernel,
    initramfs: PathBuf,
    module_cache: PathBuf,
}

impl GuestRunner {
    /// Finds the guest kernel and QEMU, and builds (or reuses) the initramfs.
    ///
    /// Errors name what is missing: the kernel ([`TestbedError::KernelNotFound`]) or a tool
    /// ([`TestbedError::ToolMissing`]). Use [`crate::require`] to turn them into a loud skip
    /// outside CI.
    pub fn new() -> Result<GuestRunner> {
        crate::tools::find_tool(
            QEMU,
            "apt-get install -t bookworm-backports qemu-system-x86",
        )?;
        let kernel = find_guest_kernel()?;
        let initramfs = ensure_initramfs(&kernel)?;
        let module_cache = ensure_module_cache(&kernel)?;
        Ok(GuestRunner {
            kernel,
            initramfs,
            module_cache,
        })
    }

    /// The kernel this runner boots.
    pub fn kernel(&self) -> &GuestKernel {
        &self.kernel
    }

    /// The cached initramfs this runner boots.
    pub fn initramfs(&self) -> &Path {
        &self.initramfs
    }

    /// Boots a guest, runs `script`, and powers it off.
    ///
    /// Waits for the machine-wide guest lock first (one guest at a time; the timeout starts
    /// once the lock is held). The guest's output is printed live, prefixed with `[guest]`.
    /// Returns [`TestbedError::GuestFailed`] for a nonzero exit, [`TestbedError::GuestTimeout`]
    /// when the timeout expires (QEMU is killed), and [`TestbedError::GuestNoExitCode`] when
    /// QEMU ends without an exit code; each names the step and quotes the kernel log tail.
    pub fn run(&self, script: &GuestScript) -> Result<GuestOutcome> {
        let mut run_dir = TempDir::new("guest")?;
        let share = run_dir.path().join("share");
        let runner_dir = share.join(".runner");
        fs::create_dir_all(&runner_dir)
            .map_err(TestbedError::io(format!("create {}", runner_dir.display())))?;
        write_runner_files(&runner_dir, script)?;
        let kernel_log = run_dir.path().join("kernel.log");
        let qemu_stderr = run_dir.path().join("qemu.stderr");

        let lock_path = guest_lock_path();
        let lock_start = Instant::now();
        let _lock = FileLock::exclusive(&lock_path, || {
            println!(
                "[guest {}] waiting for another guest to finish ({})",
                script.name,
                lock_path.display()
            );
        })?;

        let lock_wait = lock_start.elapsed();
        println!(
            "[guest {}] booting {} ({} MiB, {} CPUs, timeout {:?}, waited {:.1}s for the lock)",
            script.name,
            self.kernel.image.display(),
            script.memory_mib,
            script.cpus,
            script.timeout,
            lock_wait.as_secs_f64()
        );
        let start = Instant::now();
        let mut qemu = self.spawn_qemu(script, &share, &kernel_log, &qemu_stderr)?;
        let stdout = qemu
            .child
            .stdout
            .take()
            .ok_or_else(|| TestbedError::Invalid("qemu stdout was not piped".to_owned()))?;
        let console = Arc::new(Mutex::new(Console::default()));
        let reader = spawn_reader(stdout, Arc::clone(&console), script.name.clone(), start);

        let deadline = start + script.timeout;
        let ended = loop {
            match qemu.child.try_wait() {
                Ok(Some(status)) => break Ended::Exited(status),
                Ok(None) => {}
                Err(e) => break Ended::WaitError(e),
            }
            if Instant::now() >= deadline {
                qemu.kill();
                break Ended::TimedOut;
            }
            std::thread::sleep(WAIT_POLL);
        };
        let elapsed = start.elapsed();
        // QEMU is gone (or killed): the console pipe is closed and the reader ends.
        if reader.join().is_err() {
            eprintln!("[guest {}] console reader thread panicked", script.name);
        }
        drop(qemu);
        let console = std::mem::take(&mut *console.lock().unwrap_or_else(|e| e.into_inner()));
        let step = current_step(&console, &runner_dir);
        println!(
            "[guest {}] qemu ended after {:.1}s (boot {:.1}s)",
            script.name,
            elapsed.as_secs_f64(),
            console.started.map(|d| d.as_secs_f64()).unwrap_or(f64::NAN)
        );

        let timings = console.step_timings(elapsed);
        if !timings.is_empty() {
            let list: Vec<String> = timings
                .iter()
                .map(|t| format!("{:?} {:.1}s", t.name, t.duration.as_secs_f64()))
                .collect();
            println!("[guest {}] step times: {}", script.name, list.join(", "));
        }
        let exit_code = read_exit_code(&runner_dir);
        let failed = matches!(ended, Ended::TimedOut | Ended::WaitError(_))
            || !matches!(exit_code, Some(Ok(0)));
        let report = || {
            Box::new(GuestReport {
                step: step.clone(),
                stdout_tail: tail_lines(&console.text, LOG_TAIL_LINES),
                kernel_log: kernel_log.clone(),
                kernel_log_tail: tail_file(&kernel_log, LOG_TAIL_LINES),
                qemu_stderr: tail_file_if_any(&qemu_stderr, LOG_TAIL_LINES),
            })
        };
        if failed {
            // Keep the run directory (kernel log, /out) for inspection.
            run_dir.keep();
        }
        match (ended, exit_code) {
            (Ended::TimedOut, _) => Err(TestbedError::GuestTimeout {
                timeout: script.timeout,
                ran_for: elapsed,
                report: report(),
            }),
            (Ended::WaitError(e), _) => Err(TestbedError::Io {
                what: "wait for qemu".to_owned(),
                source: e,
            }),
            (Ended::Exited(status), None) => Err(TestbedError::GuestNoExitCode {
                detail: format!("qemu exited with {status} and the guest wrote no exit code"),
                report: report(),
            }),
            (Ended::Exited(_), Some(Err(text))) => Err(TestbedError::GuestNoExitCode {
                detail: format!("the guest wrote an unreadable exit code {text:?}"),
                report: report(),
            }),
            (Ended::Exited(_), Some(Ok(code))) if code != 0 => {
                let failed = fs::read_to_string(runner_dir.join("failed_command"))
                    .map(|s| format!(": {}", s.trim()))
                    .unwrap_or_default();
                Err(TestbedError::GuestFailed {
                    exit_code: code,
                    failed,
                    report: report(),
                })
            }
            (Ended::Exited(_), Some(Ok(code))) => Ok(GuestOutcome {
                exit_code: code,
                steps: timings,
                boot_time: console.started.unwrap_or_default(),
                stdout: console.text,
                elapsed,
                lock_wait,
                out_dir: share,
                kernel_log,
                run_dir,
            }),
        }
    }

    fn spawn_qemu(
        &self,
        script: &GuestScript,
        share: &Path,
        kernel_log: &Path,
        qemu_stderr: &Path,
    ) -> Result<Qemu> {
        let stderr = File::create(qemu_stderr).map_err(TestbedError::io(format!(
            "create {}",
            qemu_stderr.display()
        )))?;
        let mut cmd = Command::new(QEMU);
        cmd.args(["-accel", "tcg,thread=multi", "-cpu", "max"])
            .args(["-m", &script.memory_mib.to_string()])
            .args(["-smp", &script.cpus.to_string()])
            .args(["-nographic", "-nodefaults", "-no-user-config", "-no-reboot"])
            .args(["-monitor", "none"])
            .arg("-kernel")
            .arg(&self.kernel.image)
            .arg("-initrd")
            .arg(&self.initramfs)
            .arg("-append")
            .arg(format!(
                // mitigations=off: speculation mitigations cost a lot under TCG and protect
                // nothing in a throw-away test guest.
                "console=ttyS0 panic=-1 rdinit=/init mitigations=off pnfs.modcache={}",
                self.module_cache.display()
            ))
            .arg("-serial")
            .arg(format!("file:{}", kernel_log.display()))
            .args([
                "-fsdev",
                "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
                "-device",
                "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
            ])
            .arg("-fsdev")
            .arg(format!(
                "local,id=out,path={},security_model=none,multidevs=remap",
                share.display()
            ))
            .args(["-device", "virtio-9p-pci,fsdev=out,mount_tag=out"])
            .args(["-device", "virtio-serial-pci"])
            .args(["-chardev", "stdio,id=console,signal=off"])
            .args(["-device", "virtconsole,chardev=console"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of the
        // parent; it makes the kernel kill QEMU if the spawning thread dies (e.g. the test
        // process is killed), so no guest outlives its test.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => TestbedError::ToolMissing {
                tool: QEMU.to_owned(),
                hint: "apt-get install -t bookworm-backports qemu-system-x86".to_owned(),
            },
            _ => TestbedError::Io {
                what: format!("start {QEMU}"),
                source: e,
            },
        })?;
        Ok(Qemu { child })
    }
}

/// Like [`tail_file`], but empty when the file is missing or empty.
fn tail_file_if_any(path: &Path, max_lines: usize) -> String {
    match fs::metadata(path) {
        Ok(m) if m.len() > 0 => tail_file(path, max_lines),
        _ => String::new(),
    }
}

fn write_runner_files(runner_dir: &Path, script: &GuestScript) -> Result<()> {
    let write = |name: &str, text: &str| {
        let path = runner_dir.join(name);
        fs::write(&path, text).map_err(TestbedError::io(format!("write {}", path.display())))
    };
    write("stage2.sh", STAGE2)?;
    write("prelude.sh", PRELUDE)?;
    write("lib.sh", GUEST_LIB)?;
    write("script.sh", &script.script)?;
    let mut main = String::from(
        "#!/bin/bash\n# Generated by pnfs-testbed: prelude, libraries, environment, script.\n\
         source /out/.runner/prelude.sh\nsource /out/.runner/lib.sh\n",
    );
    for source in &script.sources {
        let path = source.to_str().ok_or_else(|| {
            TestbedError::Invalid(format!("source path {} is not UTF-8", source.display()))
        })?;
        main.push_str(&format!("source {}\n", shell_quote(path)));
    }
    for (key, value) in &script.env {
        let valid = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid || value.contains('\0') {
            return Err(TestbedError::Invalid(format!(
                "guest environment variable {key:?} (bad name or NUL in value)"
            )));
        }
        main.push_str(&format!("export {key}={}\n", shell_quote(value)));
    }
    main.push_str(&format!(
        "echo {STARTED_MARKER}\nsource /out/.runner/script.sh\n"
    ));
    write("main.sh", &main)
}

/// Reads `exit_code`: None when absent, Err(text) when not a number.
fn read_exit_code(runner_dir: &Path) -> Option<Result<i32, String>> {
    let text = fs::read_to_string(runner_dir.join("exit_code")).ok()?;
    Some(text.trim().parse::<i32>().map_err(|_| text))
}

fn current_step(console: &Console, runner_dir: &Path) -> String {
    let name = console.steps.last().map(|(n, _)| n.clone()).or_else(|| {
        fs::read_to_string(runner_dir.join("step"))
            .ok()
            .map(|s| s.trim().to_owned())
    });
    match name {
        Some(n) => format!("{n:?}"),
        None => "<before the first step>".to_owned(),
    }
}

enum Ended {
    Exited(ExitStatus),
    TimedOut,
    WaitError(std::io::Error),
}

/// A running QEMU; killed (and reaped) on drop.
struct Qemu {
    child: Child,
}

impl Qemu {
    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if let Err(e) = self.child.kill() {
                eprintln!("pnfs-testbed: kill qemu: {e}");
            }
        }
        if let Err(e) = self.child.wait() {
            eprintln!("pnfs-testbed: wait for qemu: {e}");
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the console reader collected.
#[derive(Debug, Default)]
struct Console {
    text: String,
    truncated: bool,
    started: Option<Duration>,
    steps: Vec<(String, Duration)>,
}

impl Console {
    fn step_timings(&self, end: Duration) -> Vec<StepTiming> {
        self.steps
            .iter()
            .enumerate()
            .map(|(i, (name, at))| {
                let until = self.steps.get(i + 1).map(|(_, t)| *t).unwrap_or(end);
                StepTiming {
                    name: name.clone(),
                    duration: until.saturating_sub(*at),
                }
            })
            .collect()
    }
}

fn spawn_reader(
    stdout: std::process::ChildStdout,
    console: Arc<Mutex<Console>>,
    name: String,
    start: Instant,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    eprintln!("[guest {name}] console read error: {e}");
                    break;
                }
            }
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']).replace('\r', "");
            let at = start.elapsed();
            let mut c = console.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(step) = line.strip_prefix(STEP_MARKER) {
                println!("[guest {name} {:6.1}s] ==> step: {step}", at.as_secs_f64());
                c.steps.push((step.to_owned(), at));
            } else if line == STARTED_MARKER {
                println!(
                    "[guest {name} {:6.1}s] booted, running the script",
                    at.as_secs_f64()
                );
                c.started = Some(at);
                continue;
            } else if let Some(what) = line.strip_prefix(FAILED_MARKER) {
                println!("[guest {name} {:6.1}s] FAILED: {what}", at.as_secs_f64());
            } else {
                println!("[guest {name} {:6.1}s] {line}", at.as_secs_f64());
            }
            let kept = if let Some(step) = line.strip_prefix(STEP_MARKER) {
                format!("==> step: {step}")
            } else if let Some(what) = line.strip_prefix(FAILED_MARKER) {
                format!("FAILED: {what}")
            } else {
                line.clone()
            };
            if c.text.len() + kept.len() < MAX_STDOUT_BYTES {
                c.text.push_str(&kept);
                c.text.push('\n');
            } else if !c.truncated {
                c.truncated = true;
                println!("[guest {name}] (output beyond {MAX_STDOUT_BYTES} bytes is not kept)");
            }
        }
    })
}
