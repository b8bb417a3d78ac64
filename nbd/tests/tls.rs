//! NBD over TLS with real clients: libnbd (`nbdinfo`, `nbdcopy` with `nbds://` URIs and
//! `tls-certificates=DIR`), qemu (`qemu-img`, `qemu-io` with a `tls-creds-x509` object) and a
//! raw protocol client, against the server in-process with certificates made at test time.

mod common;

use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use common::*;
use pnfs_nbd::codec::consts::*;
use pnfs_nbd::codec::{ClientOption, GoRequest, OptionReply};
use pnfs_nbd::testing::MemDisk;
use pnfs_nbd::{serve_with_tls, Export, ExportSet, ServerConfig, ServerTls, TlsMode};
use pnfs_testbed::TestPki;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const MIB: u64 = 1024 * 1024;
const DISK_BYTES: u64 = 16 * MIB;
const DISK_BYTES_USIZE: usize = 16 * 1024 * 1024;

/// Certificates for this test binary (one set per test, in its own directory).
fn pki(test: &str) -> Option<TestPki> {
    let dir = scratch_dir().join(format!("pki-{test}"));
    pnfs_testbed::require(TestPki::generate(&dir))
}

async fn start_tls(tls: ServerTls) -> Running {
    start_tls_with(tls, ServerConfig::default()).await
}

async fn start_tls_with(tls: ServerTls, config: ServerConfig) -> Running {
    let mut set = ExportSet::new();
    set.add(Export::new("d", Arc::new(MemDisk::new(DISK_BYTES))))
        .expect("add export");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_with_tls(
        listener,
        Arc::new(set),
        config,
        Some(tls),
        async move {
            let _ = rx.await;
        },
    ));
    Running::from_parts(Some(addr), None, tx, task)
}

fn nbds(srv: &Running, dir: &Path) -> String {
    format!(
        "nbds://{}/d?tls-certificates={}",
        srv.addr.expect("tcp"),
        dir.display()
    )
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libnbd_over_tls_copies_data_and_require_refuses_plain_text_and_foreign_certificates() {
    let (Some(nbdinfo), Some(nbdcopy)) = (tool("nbdinfo"), tool("nbdcopy")) else {
        return;
    };
    let Some(pki) = pki("libnbd") else { return };
    let tls = ServerTls::from_dir(&pki.server, true, TlsMode::Require).expect("load credentials");
    let srv = start_tls(tls).await;

    // TLS with a client certificate from the CA: served.
    let json = run_ok(&nbdinfo, &["--json", &nbds(&srv, &pki.client)]).await;
    assert!(
        json.contains(&format!("\"export-size\": {DISK_BYTES}")),
        "{json}"
    );
    assert!(
        json.contains("\"tls\": true") || json.contains("TLS"),
        "{json}"
    );

    // nbdcopy there and back over TLS.
    let mut rng = Rng::from_env("libnbd_tls");
    let src = random_file("tls-src", DISK_BYTES_USIZE, &mut rng);
    let back = scratch_dir().join("tls-back");
    let uri = nbds(&srv, &pki.client);
    run_ok(&nbdcopy, &[src.to_str().unwrap(), &uri]).await;
    run_ok(&nbdcopy, &[&uri, back.to_str().unwrap()]).await;
    assert!(
        std::fs::read(&src).unwrap() == std::fs::read(&back).unwrap(),
        "data copied back over TLS differs"
    );

    // Plain text against "require": refused.
    let plain = format!("nbd://{}/d", srv.addr.unwrap());
    let out = run(&nbdinfo, &[&plain]).await;
    assert!(!out.status.success(), "plain text was served: {out:?}");
    // libnbd reports NBD_REP_ERR_TLS_REQD to NBD_OPT_GO as "not supported"; the raw client
    // test below checks the reply code itself.
    let err = stderr_of(&out);
    assert!(err.contains("server replied with error to opt_go"), "{err}");

    // A client certificate from another CA, and no certificate at all: refused.
    for dir in [&pki.rogue, &pki.anon] {
        let out = run(&nbdinfo, &["--json", &nbds(&srv, dir)]).await;
        assert!(
            !out.status.success(),
            "client {} was served: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    srv.stop().await.unwrap();
}

/// qemu's `tls-creds-x509` object and the NBD block driver.
fn qemu_args<'a>(dir: &'a str, opts: &'a str) -> Vec<&'a str> {
    vec!["--object", dir, "--image-opts", opts]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_reads_and_writes_over_tls() {
    let (Some(qemu_img), Some(qemu_io)) = (tool("qemu-img"), tool("qemu-io")) else {
        return;
    };
    let Some(pki) = pki("qemu") else { return };
    let tls = ServerTls::from_dir(&pki.server, true, TlsMode::Require).expect("load credentials");
    let srv = start_tls(tls).await;
    let port = srv.addr.unwrap().port().to_string();
    let creds = format!(
        "tls-creds-x509,id=tls0,dir={},endpoint=client",
        pki.client.display()
    );
    let image = format!("driver=nbd,host=127.0.0.1,port={port},export=d,tls-creds=tls0");

    let mut args = vec!["info", "--output=json"];
    args.extend(qemu_args(&creds, &image));
    let info = run_ok(&qemu_img, &args).await;
    assert!(
        info.contains(&format!("\"virtual-size\": {DISK_BYTES}")),
        "{info}"
    );

    let mut args = qemu_args(&creds, &image);
    args.extend([
        "-c",
        "write -P 0x5a 1M 2M",
        "-c",
        "read -P 0x5a 1M 2M",
        "-c",
        "read -P 0 0 1M",
    ]);
    let out = run_ok(&qemu_io, &args).await;
    assert!(!out.contains("Pattern verification failed"), "{out}");

    // Without the TLS object qemu talks plain text and is refused.
    let plain = format!("driver=nbd,host=127.0.0.1,port={port},export=d");
    let out = run(&qemu_img, &["info", "--image-opts", &plain]).await;
    assert!(!out.status.success(), "plain text was served to qemu");
    let err = stderr_of(&out);
    assert!(err.contains("TLS"), "{err}");

    // A client without a certificate is refused by the server (qemu itself refuses to load
    // a client certificate that its own CA file does not vouch for, so the foreign-CA case
    // is the libnbd test's).
    let anon = format!(
        "tls-creds-x509,id=tls0,dir={},endpoint=client",
        pki.anon.display()
    );
    let mut args = vec!["info"];
    args.extend(qemu_args(&anon, &image));
    let out = run(&qemu_img, &args).await;
    assert!(
        !out.status.success(),
        "a client without a certificate was served: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mode_serves_plain_text_and_tls_without_client_certificates() {
    let Some(nbdinfo) = tool("nbdinfo") else {
        return;
    };
    let Some(pki) = pki("on") else { return };
    let tls = ServerTls::from_dir(&pki.server, false, TlsMode::On).expect("load credentials");
    let srv = start_tls(tls).await;
    let plain = run_ok(
        &nbdinfo,
        &["--size", &format!("nbd://{}/d", srv.addr.unwrap())],
    )
    .await;
    assert_eq!(plain.trim(), DISK_BYTES.to_string());
    let over_tls = run_ok(&nbdinfo, &["--size", &nbds(&srv, &pki.anon)]).await;
    assert_eq!(over_tls.trim(), DISK_BYTES.to_string());
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_mode_answers_tls_reqd_and_drops_bytes_smuggled_before_the_tls_handshake() {
    let Some(pki) = pki("raw") else { return };
    let tls = ServerTls::from_dir(&pki.server, false, TlsMode::Require).expect("load credentials");
    let srv = start_tls(tls).await;
    let addr = srv.addr.unwrap();

    let mut c = RawClient::connect(addr).await;
    for opt in [
        ClientOption::List,
        ClientOption::StructuredReply,
        ClientOption::Go(GoRequest {
            name: "d".into(),
            info_requests: vec![],
        }),
    ] {
        c.option(&opt).await;
        match c.option_reply().await {
            (_, OptionReply::Error { reply_type, .. }) => {
                assert_eq!(reply_type, REP_ERR_TLS_REQD, "{opt:?}")
            }
            other => panic!("{opt:?} answered in plain text: {other:?}"),
        }
    }
    // EXPORT_NAME has no error reply: the connection is closed.
    c.option(&ClientOption::ExportName("d".into())).await;
    assert!(c.closed_by_peer().await);

    // STARTTLS followed at once by plain-text bytes (a would-be injection): the server must
    // not take them as if they came over TLS; it closes the connection.
    let mut c = RawClient::connect(addr).await;
    let mut out = BytesMut::new();
    ClientOption::StartTls.encode(&mut out);
    ClientOption::StructuredReply.encode(&mut out);
    c.send(&out).await;
    assert!(matches!(
        c.option_reply().await,
        (OPT_STARTTLS, OptionReply::Ack)
    ));
    assert!(c.closed_by_peer().await);
    srv.stop().await.unwrap();
}

#[test]
fn missing_or_broken_credentials_are_named() {
    let Some(pki) = pki("broken") else { return };
    let err = ServerTls::from_dir(&pki.anon, false, TlsMode::On).unwrap_err();
    assert!(err.to_string().contains("server-cert.pem"), "{err}");
    // verify_peer needs the CA; the client directory has no server key.
    let err = ServerTls::from_dir(&pki.client, true, TlsMode::On).unwrap_err();
    assert!(err.to_string().contains("server-cert.pem"), "{err}");
    let dir = scratch_dir().join("pki-broken/garbage");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        pki.server.join("server-cert.pem"),
        dir.join("server-cert.pem"),
    )
    .unwrap();
    std::fs::write(dir.join("server-key.pem"), "not a key").unwrap();
    let err = ServerTls::from_dir(&dir, false, TlsMode::On).unwrap_err();
    assert!(err.to_string().contains("server-key.pem"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_with_an_allow_list_reaches_only_the_named_exports() {
    let Some(nbdinfo) = tool("nbdinfo") else {
        return;
    };
    let Some(pki) = pki("allow") else { return };
    let mut all = ExportSet::new();
    for name in ["a", "b"] {
        all.add(Export::new(name, Arc::new(MemDisk::new(DISK_BYTES))))
            .expect("add export");
    }
    let only_b = all.subset(&["b".to_owned()]).expect("subset");
    assert!(all.subset(&["c".to_owned()]).is_err());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let tls = ServerTls::from_dir(&pki.server, false, TlsMode::Require).expect("credentials");
    let task = tokio::spawn(serve_with_tls(
        listener,
        Arc::new(only_b),
        ServerConfig::default(),
        Some(tls),
        async move {
            let _ = rx.await;
        },
    ));
    let srv = Running::from_parts(Some(addr), None, tx, task);
    let uri = |name: &str| {
        format!(
            "nbds://{addr}/{name}?tls-certificates={}",
            pki.anon.display()
        )
    };
    let list = run_ok(&nbdinfo, &["--list", "--json", &uri("")]).await;
    assert!(list.contains("\"export-name\": \"b\""), "{list}");
    assert!(!list.contains("\"export-name\": \"a\""), "{list}");
    run_ok(&nbdinfo, &["--size", &uri("b")]).await;
    let out = run(&nbdinfo, &["--size", &uri("a")]).await;
    assert!(!out.status.success(), "export a was reachable");
    assert!(
        stderr_of(&out).contains("unknown") || stderr_of(&out).contains("no export"),
        "{}",
        stderr_of(&out)
    );
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_in_the_tls_handshake_is_dropped_at_the_tls_deadline() {
    let Some(pki) = pki("stall") else { return };
    let tls = ServerTls::from_dir(&pki.server, false, TlsMode::Require).expect("load credentials");
    const TLS_LIMIT_MS: u64 = 300;
    let config = ServerConfig {
        tls_handshake_timeout_ms: TLS_LIMIT_MS,
        // The whole-handshake limit is far away: the TLS one must be what ends it.
        handshake_timeout_ms: 100_000,
        ..ServerConfig::default()
    };
    let srv = start_tls_with(tls, config).await;
    let mut c = RawClient::connect(srv.addr.unwrap()).await;
    c.option(&ClientOption::StartTls).await;
    assert!(matches!(
        c.option_reply().await,
        (OPT_STARTTLS, OptionReply::Ack)
    ));
    let started = std::time::Instant::now();
    // Never send a ClientHello.
    assert!(c.closed_by_peer().await);
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(TLS_LIMIT_MS - 50)
            && waited < std::time::Duration::from_secs(30),
        "closed after {waited:?}"
    );
    srv.stop().await.unwrap();
}
