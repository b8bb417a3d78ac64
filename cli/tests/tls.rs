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

/// Creates `/NAME` (16 MiB) on the MDS with a short `pnfsgw export --create`.
fn create_file(mds: &str, vol: &std::path::Path, dir: &std::path::Path, name: &str) {
    let nbd = format!("127.0.0.1:{}", pnfs_testbed::free_port().unwrap());
    let mut gw = Gw::spawn(&[
        "export",
        "--mds",
        mds,
        "--path",
        &format!("/{name}"),
        "--nbd",
        &nbd,
        "--volume",
        vol.to_str().unwrap(),
        "--create",
        "16M",
        "--control",
        dir.join(format!("create-{name}.sock")).to_str().unwrap(),
    ]);
    gw.wait_line("nbd://");
    let (code, log) = gw.terminate();
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn run_serves_each_listener_only_its_allowed_exports() {
    let Some(nbdinfo) = pnfs_testbed::require_tool("nbdinfo") else {
        return;
    };
    let dir = tmpdir("tls-allow");
    let Some(pki) = pnfs_testbed::require(TestPki::generate(&dir.join("pki"))) else {
        return;
    };
    let (mds, mds_addr, vol) = start_mds(&dir, "vol.img", &[]);
    create_file(&mds_addr, &vol, &dir, "a");
    create_file(&mds_addr, &vol, &dir, "b");
    let tls_port = pnfs_testbed::free_port().unwrap();
    let plain = format!("127.0.0.1:{}", pnfs_testbed::free_port().unwrap());
    let file = dir.join("gw.toml");
    std::fs::write(
        &file,
        format!(
            "[mds]\naddresses = [\"{mds_addr}\"]\n[volumes]\nsearch = [\"{}\"]\n\
             [control]\nsocket = \"{}\"\n\
             [[nbd.listener]]\ntcp = \"127.0.0.1:{tls_port}\"\ntls = \"require\"\n\
             tls_dir = \"{}\"\nexports = [\"a\"]\n\
             [[nbd.listener]]\ntcp = \"{plain}\"\nexports = [\"b\"]\n\
             [[device]]\nname = \"a\"\npath = \"/a\"\n[[device]]\nname = \"b\"\npath = \"/b\"\n",
            vol.display(),
            dir.join("run.sock").display(),
            pki.server.display()
        ),
    )
    .unwrap();
    tool(BIN, &["check-config", file.to_str().unwrap()]);
    let mut gw = Gw::spawn(&["run", "--config", file.to_str().unwrap()]);
    wait_listening(&plain, &mut gw);
    wait_listening(&format!("127.0.0.1:{tls_port}"), &mut gw);
    let tls_uri = |name: &str| {
        format!(
            "nbds://127.0.0.1:{tls_port}/{name}?tls-certificates={}",
            pki.anon.display()
        )
    };
    let served = |uri: &str| {
        Command::new(&nbdinfo)
            .args(["--size", uri])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(served(&tls_uri("a")), "{}", gw.log());
    assert!(
        !served(&tls_uri("b")),
        "b reachable on the listener that names only a"
    );
    assert!(served(&format!("nbd://{plain}/b")), "{}", gw.log());
    assert!(
        !served(&format!("nbd://{plain}/a")),
        "a reachable in plain text"
    );
    let (code, log) = gw.terminate();
    assert_eq!(code, Some(0), "{log}");
    let (code, log) = mds.terminate();
    assert_eq!(code, Some(0), "{log}");
}
