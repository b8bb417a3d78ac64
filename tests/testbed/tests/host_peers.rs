//! Host peer smoke tests: nfs-ganesha answers NFSv4 RPCs on a non-standard port on 127.0.0.1;
//! nbdkit serves a file whose size nbdinfo reads. Both are started and stopped by the test.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use pnfs_testbed::peers::{rpc_null_call, RpcReply, NFS_PROGRAM};
use pnfs_testbed::util::TempDir;
use pnfs_testbed::{require, require_tool, Ganesha, Nbdkit};

/// RFC 5531 accept_stat values.
const SUCCESS: u32 = 0;
const PROG_MISMATCH: u32 = 2;
/// The standard NFS port, which the test peers must not use.
const NFS_STANDARD_PORT: u16 = 2049;
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn ganesha_answers_nfs4_null_on_loopback() {
    if require_tool("ganesha.nfsd").is_none() {
        return;
    }
    let dir = TempDir::new("ganesha-export").unwrap();
    std::fs::write(dir.path().join("hello"), b"hello").unwrap();
    let Some(ganesha) = require(Ganesha::start(dir.path())) else {
        return;
    };
    let addr = ganesha.addr();
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), NFS_STANDARD_PORT);
    println!(
        "nfs-ganesha on {addr}, log {}",
        ganesha.log_path().display()
    );

    TcpStream::connect_timeout(&addr, RPC_TIMEOUT).expect("TCP connect to ganesha");
    assert_eq!(
        rpc_null_call(addr, NFS_PROGRAM, 4, RPC_TIMEOUT).unwrap(),
        RpcReply::Accepted(SUCCESS),
        "NULL call to program 100003 version 4"
    );
    // A version it does not serve gets a real PROG_MISMATCH, so the check above is not vacuous.
    assert_eq!(
        rpc_null_call(addr, NFS_PROGRAM, 99, RPC_TIMEOUT).unwrap(),
        RpcReply::Accepted(PROG_MISMATCH),
        "NULL call to program 100003 version 99"
    );

    ganesha.stop();
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "ganesha still listening on {addr} after stop"
    );
}

#[test]
fn nbdkit_serves_file_and_nbdinfo_reads_size() {
    let Some(nbdinfo) = require_tool("nbdinfo") else {
        return;
    };
    if require_tool("nbdkit").is_none() {
        return;
    }
    const SIZE_BYTES: u64 = 3 * 1024 * 1024 + 4096;
    let dir = TempDir::new("nbdkit-file").unwrap();
    let file = dir.path().join("disk.img");
    std::fs::File::create(&file)
        .unwrap()
        .set_len(SIZE_BYTES)
        .unwrap();
    let Some(nbdkit) = require(Nbdkit::start(&file)) else {
        return;
    };
    println!("nbdkit at {}", nbdkit.uri());
    let out = Command::new(nbdinfo)
        .arg("--size")
        .arg(nbdkit.uri())
        .output()
        .expect("run nbdinfo");
    assert!(
        out.status.success(),
        "nbdinfo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("nbdinfo --size prints a number");
    assert_eq!(size, SIZE_BYTES);
    let port = nbdkit.port;
    nbdkit.stop();
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nbdkit still listening on {port} after stop"
    );
}
