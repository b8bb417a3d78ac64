//! `pnfsgw export --tls require --tls-dir DIR --tls-verify-peer` over the embedded MDS, with
//! libnbd and qemu as clients and certificates made at test time; a plain-text client, a
//! client without a certificate and one with a certificate from another CA are refused, and
//! the refusals are logged with the peer's address.

mod common;

use std::process::Command;

use common::*;
use pnfs_testbed::TestPki;

const DISK_BYTES: u64 = 64 << 20;

#[test]
fn export_over_tls_serves_libnbd_and_qemu_and_refuses_the_others() {
    let (Some(nbdinfo), Some(_)) = (
        pnfs_testbed::require_tool("nbdinfo"),
        pnfs_testbed::require_tool("qemu-io"),
    ) else {
        return;
    };
    let dir = tmpdir("tls");
    let Some(pki) = pnfs_testbed::require(TestPki::generate(&dir.join("pki"))) else {
        return;
    };
    let (mds, mds_addr, vol) = start_mds(&dir, "vol.img", &[]);
    let port = pnfs_testbed::free_port().unwrap();
    let nbd = format!("127.0.0.1:{port}");
    let mut gw = Gw::spawn(&[
        "export",
        "--mds",
        &mds_addr,
        "--path",
        "/vm",
        "--nbd",
        &nbd,
        "--volume",
        vol.to_str().unwrap(),
        "--create",
        "64M",
        "--control",
        dir.join("control.sock").to_str().unwrap(),
        "--tls",
        "require",
        "--tls-dir",
        pki.server.to_str().unwrap(),
        "--tls-verify-peer",
    ]);
    // The ready line is the TLS URI.
    let uri = format!("nbds://{}", gw.wait_line("nbds://"));
    assert_eq!(uri, format!("nbds://{nbd}/vm"));
    let with = |d: &std::path::Path| format!("{uri}?tls-certificates={}", d.display());

    let size = tool(nbdinfo.to_str().unwrap(), &["--size", &with(&pki.client)]);
    assert_eq!(size.trim(), DISK_BYTES.to_string());

    // qemu with a tls-creds-x509 object: write, then read back.
    let creds = format!(
        "tls-creds-x509,id=tls0,dir={},endpoint=client",
        pki.client.display()
    );
    let image = format!("driver=nbd,host=127.0.0.1,port={port},export=vm,tls-creds=tls0");
    let out = tool(
        "qemu-io",
        &[
            "--object",
            &creds,
            "--image-opts",
            &image,
            "-c",
            "write -P 0x3c 1M 1M",
            "-c",
            "flush",
            "-c",
            "read -P 0x3c 1M 1M",
        ],
    );
    assert!(!out.contains("Pattern verification failed"), "{out}");

    // Refused: plain text, no client certificate, a certificate from another CA.
    let refused = |args: &[&str]| {
        let o = Command::new(&nbdinfo).args(args).output().unwrap();
        assert!(
            !o.status.success(),
            "nbdinfo {args:?} was served: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let plain = refused(&[&format!("nbd://{nbd}/vm")]);
    assert!(
        plain.contains("server replied with error to opt_go"),
        "{plain}"
    );
    refused(&[&with(&pki.anon)]);
    refused(&[&with(&pki.rogue)]);

    let (code, log) = gw.terminate();
    assert_eq!(code, Some(0), "{log}");
    let tls_failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("TLS: handshake failed") && l.contains("127.0.0.1:"))
        .collect();
    assert_eq!(
        tls_failures.len(),
        2,
        "two refused handshakes with the peer's address:\n{log}"
    );
    let (code, log) = mds.terminate();
    assert_eq!(code, Some(0), "{log}");
}
