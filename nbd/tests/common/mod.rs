//! Shared helpers for the integration tests: start a server in-process, a raw protocol
//! client built on the crate's own codec, tool lookup, and a seeded `StdRng`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use pnfs_nbd::codec::consts::*;
use pnfs_nbd::codec::{
    decode_chunk, decode_greeting, decode_option_reply, decode_simple_reply, encode_client_flags,
    encode_request, Chunk, ClientOption, CodecLimits, Decode, GoRequest, InfoReply,
    MetaContextRequest, OptionReply, Request, SimpleReplyHeader,
};
use pnfs_nbd::{serve_with_config, ExportSet, NbdResult, ServerConfig};
use rand::rngs::StdRng;
use rand::{Rng as _, RngCore, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Bound on every wait in the tests.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Polls `cond` until it holds; panics after [`TEST_TIMEOUT`].
pub async fn wait_until(cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + TEST_TIMEOUT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within {TEST_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A server running in this process.
pub struct Running {
    /// TCP address (when started on TCP).
    pub addr: Option<SocketAddr>,
    /// Unix socket path (when started on a Unix socket).
    pub socket: Option<PathBuf>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<NbdResult<()>>>,
}

impl Running {
    /// `nbd://127.0.0.1:PORT/NAME` or `nbd+unix:///NAME?socket=PATH`.
    pub fn uri(&self, name: &str) -> String {
        match (&self.addr, &self.socket) {
            (Some(a), _) => format!("nbd://{a}/{name}"),
            (None, Some(p)) => format!("nbd+unix:///{name}?socket={}", p.display()),
            _ => unreachable!(),
        }
    }

    /// A server started elsewhere (e.g. with TLS) with its stop sender and task.
    pub fn from_parts(
        addr: Option<SocketAddr>,
        socket: Option<PathBuf>,
        stop: oneshot::Sender<()>,
        task: JoinHandle<NbdResult<()>>,
    ) -> Self {
        Self {
            addr,
            socket,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Fires shutdown and waits for `serve` to return.
    pub async fn stop(mut self) -> NbdResult<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let task = self.task.take().expect("running");
        tokio::time::timeout(TEST_TIMEOUT, task)
            .await
            .expect("serve returns after shutdown")
            .expect("serve task")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(p) = &self.socket {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Starts a server on 127.0.0.1:0.
pub async fn start_tcp(exports: ExportSet, config: ServerConfig) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_with_config(
        listener,
        Arc::new(exports),
        config,
        async move {
            let _ = rx.await;
        },
    ));
    Running {
        addr: Some(addr),
        socket: None,
        stop: Some(tx),
        task: Some(task),
    }
}

/// Starts a server on a fresh Unix socket under the target temp dir.
pub async fn start_unix(exports: ExportSet, config: ServerConfig, tag: &str) -> Running {
    let path = scratch_dir().join(format!("{tag}-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).expect("bind unix");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_with_config(
        listener,
        Arc::new(exports),
        config,
        async move {
            let _ = rx.await;
        },
    ));
    Running {
        addr: None,
        socket: Some(path),
        stop: Some(tx),
        task: Some(task),
    }
}

/// A scratch directory for this test binary.
pub fn scratch_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("pnfs-nbd-tests-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// Finds a host tool. Missing: panics when `CI` is set, otherwise prints a loud notice and
/// returns None (the caller returns early).
pub fn tool(name: &str) -> Option<PathBuf> {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return Some(p);
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!("required tool {name} is missing (CI is set): run tests/setup.sh");
    }
    eprintln!("!!!! SKIPPING: tool {name} is not installed (set CI=1 to make this a failure) !!!!");
    None
}

/// Runs a command with a timeout, with /usr/bin first on PATH (nbdsh needs the system
/// python); returns its output.
pub async fn run(program: &Path, args: &[&str]) -> Output {
    let path = format!(
        "/usr/bin:/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    let child = tokio::process::Command::new(program)
        .args(args)
        .env("PATH", path)
        .env("LANG", "C")
        // Tools that leave files behind (fio's verify state) leave them in the scratch dir.
        .current_dir(scratch_dir())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(TEST_TIMEOUT, child)
        .await
        .unwrap_or_else(|_| panic!("{} {args:?} timed out", program.display()))
        .unwrap_or_else(|e| panic!("{} failed to start: {e}", program.display()))
}

/// Runs a command and asserts success; returns stdout.
pub async fn run_ok(program: &Path, args: &[&str]) -> String {
    let out = run(program, args).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        program.display(),
        out.status
    );
    stdout
}

/// A seeded `StdRng`: deterministic from a printed seed.
#[derive(Debug, Clone)]
pub struct Rng(StdRng);

impl Rng {
    /// Seeded from `NBD_TEST_SEED` if set, else from the clock; the seed is printed.
    pub fn from_env(test: &str) -> Self {
        let seed = std::env::var("NBD_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() ^ u64::from(d.subsec_nanos()))
                    .unwrap_or(1)
            });
        eprintln!("{test}: seed {seed} (rerun with NBD_TEST_SEED={seed})");
        Self::new(seed)
    }

    /// From a seed.
    pub fn new(seed: u64) -> Self {
        Self(StdRng::seed_from_u64(seed))
    }

    /// Uniform below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.gen_range(0..n)
    }

    /// Uniform index below `len` (len > 0).
    pub fn index(&mut self, len: usize) -> usize {
        self.0.gen_range(0..len)
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.0.gen()
    }

    /// Fills a buffer.
    pub fn fill(&mut self, buf: &mut [u8]) {
        self.0.fill_bytes(buf);
    }
}

/// Writes `len` random bytes to a new file and returns its path.
pub fn random_file(name: &str, len: usize, rng: &mut Rng) -> PathBuf {
    let p = scratch_dir().join(name);
    let mut data = vec![0u8; len];
    rng.fill(&mut data);
    std::fs::write(&p, &data).expect("write random file");
    p
}

/// A raw NBD client over TCP, for protocol corner cases no library client will send.
pub struct RawClient {
    pub stream: TcpStream,
    pub buf: BytesMut,
    pub limits: CodecLimits,
}

impl RawClient {
    /// Connects and reads the greeting; does not send client flags yet.
    pub async fn connect_bare(addr: SocketAddr) -> (Self, u16) {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut c = Self {
            stream,
            buf: BytesMut::new(),
            limits: CodecLimits::default(),
        };
        let flags = c.read(decode_greeting).await.expect("greeting");
        (c, flags)
    }

    /// Like [`RawClient::connect`], retrying while the server closes new connections (all
    /// connection slots taken: slots free shortly after a peer sees its connection close).
    pub async fn connect_when_slot_free(addr: SocketAddr) -> Self {
        let deadline = tokio::time::Instant::now() + TEST_TIMEOUT;
        loop {
            let mut c = Self {
                stream: TcpStream::connect(addr).await.expect("connect"),
                buf: BytesMut::new(),
                limits: CodecLimits::default(),
            };
            if c.read(decode_greeting).await.is_some() {
                let mut out = BytesMut::new();
                encode_client_flags(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES, &mut out);
                c.send(&out).await;
                return c;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no connection slot freed"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Connects, reads the greeting, sends fixed-newstyle + no-zeroes client flags.
    pub async fn connect(addr: SocketAddr) -> Self {
        let (mut c, flags) = Self::connect_bare(addr).await;
        assert_eq!(flags, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
        let mut out = BytesMut::new();
        encode_client_flags(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES, &mut out);
        c.send(&out).await;
        c
    }

    /// Sends raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// Reads one message with `parse`; None on EOF.
    pub async fn read<T>(&mut self, parse: impl Fn(&[u8]) -> NbdResult<Decode<T>>) -> Option<T> {
        loop {
            match parse(&self.buf).expect("parse") {
                Decode::Done {
                    value,
                    consumed_bytes,
                } => {
                    let _ = self.buf.split_to(consumed_bytes);
                    return Some(value);
                }
                Decode::NeedMore { total_bytes } => {
                    self.buf.reserve(total_bytes - self.buf.len());
                    let n = tokio::time::timeout(TEST_TIMEOUT, self.stream.read_buf(&mut self.buf))
                        .await
                        .expect("read timed out")
                        .unwrap_or(0);
                    if n == 0 {
                        return None;
                    }
                }
            }
        }
    }

    /// True once the server has closed the connection (reads EOF or reset).
    pub async fn closed_by_peer(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(TEST_TIMEOUT, self.stream.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    /// Sends an option.
    pub async fn option(&mut self, opt: &ClientOption) {
        let mut out = BytesMut::new();
        opt.encode(&mut out);
        self.send(&out).await;
    }

    /// Reads one option reply.
    pub async fn option_reply(&mut self) -> (u32, OptionReply) {
        let limits = self.limits;
        self.read(move |b| decode_option_reply(b, &limits))
            .await
            .expect("option reply")
    }

    /// Reads option replies up to and including the final one (ACK or error).
    pub async fn option_replies(&mut self) -> Vec<OptionReply> {
        let mut v = Vec::new();
        loop {
            let (_, r) = self.option_reply().await;
            let last = matches!(r, OptionReply::Ack | OptionReply::Error { .. });
            v.push(r);
            if last {
                return v;
            }
        }
    }

    /// Structured replies + base:allocation + GO on `name`; returns (size, flags, block sizes).
    pub async fn go_structured(&mut self, name: &str) -> (u64, u16, (u32, u32, u32)) {
        self.option(&ClientOption::StructuredReply).await;
        assert_eq!(self.option_replies().await, vec![OptionReply::Ack]);
        self.option(&ClientOption::SetMetaContext(MetaContextRequest {
            export_name: name.into(),
            queries: vec![CONTEXT_BASE_ALLOCATION.into()],
        }))
        .await;
        let r = self.option_replies().await;
        assert_eq!(
            r,
            vec![
                OptionReply::MetaContext {
                    id: pnfs_nbd::BASE_ALLOCATION_CONTEXT_ID,
                    name: CONTEXT_BASE_ALLOCATION.into()
                },
                OptionReply::Ack
            ]
        );
        self.go(name).await
    }

    /// GO on `name` asking for the block size; returns (size, flags, block sizes).
    pub async fn go(&mut self, name: &str) -> (u64, u16, (u32, u32, u32)) {
        self.option(&ClientOption::Go(GoRequest {
            name: name.into(),
            info_requests: vec![INFO_BLOCK_SIZE],
        }))
        .await;
        let mut export = None;
        let mut sizes = None;
        for r in self.option_replies().await {
            match r {
                OptionReply::Info(InfoReply::Export {
                    size_bytes,
                    transmission_flags,
                }) => export = Some((size_bytes, transmission_flags)),
                OptionReply::Info(InfoReply::BlockSize {
                    minimum_bytes,
                    preferred_bytes,
                    maximum_bytes,
                }) => sizes = Some((minimum_bytes, preferred_bytes, maximum_bytes)),
                OptionReply::Ack => {}
                other => panic!("unexpected GO reply {other:?}"),
            }
        }
        let (size, flags) = export.expect("NBD_INFO_EXPORT");
        (size, flags, sizes.expect("NBD_INFO_BLOCK_SIZE"))
    }

    /// Sends one request.
    pub async fn request(&mut self, req: Request, payload: &[u8]) {
        let mut out = BytesMut::new();
        encode_request(&req, payload, &mut out);
        self.send(&out).await;
    }

    /// Reads one simple reply header.
    pub async fn simple_reply(&mut self) -> Option<SimpleReplyHeader> {
        self.read(decode_simple_reply).await
    }

    /// Reads `n` raw bytes (simple read reply data).
    pub async fn raw_bytes(&mut self, n: usize) -> Vec<u8> {
        let got = self
            .read(move |b| {
                Ok(if b.len() >= n {
                    Decode::Done {
                        value: b[..n].to_vec(),
                        consumed_bytes: n,
                    }
                } else {
                    Decode::NeedMore { total_bytes: n }
                })
            })
            .await;
        got.expect("data")
    }

    /// Reads one structured chunk.
    pub async fn chunk(&mut self) -> Option<Chunk> {
        let limits = self.limits;
        self.read(move |b| decode_chunk(b, &limits)).await
    }
}

/// A request with no flags.
pub fn req(command: pnfs_nbd::codec::Command, cookie: u64, offset: u64, length: u32) -> Request {
    Request {
        flags: 0,
        command,
        cookie,
        offset_bytes: offset,
        length_bytes: u64::from(length),
    }
}
