//! `[[nbd.listener]]`: TLS modes, certificate directories and export allow-lists, with the
//! exact FILE:LINE:COL of every rejection.

use std::path::{Path, PathBuf};

use pnfs_config::{parse_str, Config, ConfigError, HostIdentity, NbdAddress, NbdTls, NbdTlsMode};

fn host() -> HostIdentity {
    HostIdentity {
        machine_name: "host1".into(),
        machine_id: "0123456789abcdef0123456789abcdef".into(),
    }
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_str(Path::new("/etc/pnfsgw/gw.toml"), text, &host())
}

/// A certificate directory with the named files (contents are not the config's business).
fn tls_dir(tag: &str, files: &[&str]) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pnfs-config-tls-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    for f in files {
        std::fs::write(d.join(f), "x").unwrap();
    }
    d
}

const ALL: [&str; 3] = ["ca-cert.pem", "server-cert.pem", "server-key.pem"];

/// Head (lines 1-2), a listener table from line 3 on, then two devices.
fn config(listener: &str) -> String {
    format!(
        "[mds]\naddresses = [\"127.0.0.1:2049\"]\n[[nbd.listener]]\n{listener}\n\
         [[device]]\nname = \"a\"\npath = \"/a\"\n[[device]]\nname = \"b\"\npath = \"/b\"\n"
    )
}

fn err(text: &str) -> String {
    parse(text).expect_err("must be rejected").to_string()
}

#[test]
fn a_tls_listener_with_an_allow_list_is_read() {
    let dir = tls_dir("good", &ALL);
    let c = parse(&config(&format!(
        "tcp = \"0.0.0.0:10810\"\ntls = \"require\"\ntls_dir = \"{}\"\ntls_verify_peer = true\nexports = [\"b\"]",
        dir.display()
    )))
    .unwrap();
    let all = c.nbd.all_listeners();
    assert_eq!(all.len(), 1);
    assert_eq!(
        all[0].address,
        NbdAddress::Tcp("0.0.0.0:10810".parse().unwrap())
    );
    assert_eq!(
        all[0].tls,
        Some(NbdTls {
            mode: NbdTlsMode::Require,
            dir: dir.clone(),
            verify_peer: true
        })
    );
    assert_eq!(all[0].exports, Some(vec!["b".to_owned()]));
    // "off" and no keys at all are the same: plain text, every export.
    let c = parse(&config("unix = \"/run/x.sock\"\ntls = \"off\"")).unwrap();
    assert_eq!(c.nbd.listeners[0].tls, None);
    assert_eq!(c.nbd.listeners[0].exports, None);
}

#[test]
fn tls_mistakes_name_their_place() {
    let dir = tls_dir("partial", &["server-cert.pem"]);
    let d = dir.display();
    let e = err(&config(&format!(
        "tcp = \"127.0.0.1:1\"\ntls = \"on\"\ntls_dir = \"{d}\""
    )));
    assert!(
        e.starts_with("/etc/pnfsgw/gw.toml:6:11: ")
            && e.contains(&format!("missing certificate file {d}/server-key.pem")),
        "{e}"
    );
    // verify_peer needs the CA as well.
    let dir = tls_dir("noca", &["server-cert.pem", "server-key.pem"]);
    let e = err(&config(&format!(
        "tcp = \"127.0.0.1:1\"\ntls = \"on\"\ntls_dir = \"{}\"\ntls_verify_peer = true",
        dir.display()
    )));
    assert!(
        e.starts_with("/etc/pnfsgw/gw.toml:6:11: ") && e.contains("ca-cert.pem"),
        "{e}"
    );
    // No directory.
    let e = err(&config("tcp = \"127.0.0.1:1\"\ntls = \"require\""));
    assert!(
        e.starts_with("/etc/pnfsgw/gw.toml:5:7: ") && e.contains("needs tls_dir"),
        "{e}"
    );
    // TLS on a Unix socket.
    let dir = tls_dir("unix", &ALL);
    let e = err(&config(&format!(
        "unix = \"/run/x.sock\"\ntls = \"on\"\ntls_dir = \"{}\"",
        dir.display()
    )));
    assert!(
        e.starts_with("/etc/pnfsgw/gw.toml:5:7: ") && e.contains("TCP listeners only"),
        "{e}"
    );
    // Unknown mode, stray keys.
    let e = err(&config("tcp = \"127.0.0.1:1\"\ntls = \"yes\""));
    assert!(
        e.starts_with("/etc/pnfsgw/gw.toml:5:7: ") && e.contains("\"require\""),
        "{e}"
    );
    let e = err(&config("tcp = \"127.0.0.1:1\"\ntls_verify_peer = true"));
    assert!(
        e.starts_with("/etc/pnfsgw/gw.toml:5:19: ") && e.contains("tls is off"),
        "{e}"
    );
    let e = err(&config("tcp = \"127.0.0.1:1\"\ntls_dir = \"/etc/x\""));
    assert!(
        e.starts_with("/etc/pnfsgw/gw.toml:5:11: ") && e.contains("tls is off"),
        "{e}"
    );
}

#[test]
fn listener_addresses_and_allow_lists_are_checked() {
    let e = err(&config(
        "tcp = \"127.0.0.1:1\"\nexports = [\"a\", \"nope\"]",
    ));
    assert!(
        e.starts_with("/etc/pnfsgw/gw.toml:5:17: ")
            && e.contains("\"nope\" is no device's NBD export"),
        "{e}"
    );
    let e = err(&config("tcp = \"127.0.0.1:1\"\nexports = []"));
    assert!(
        e.starts_with("/etc/pnfsgw/gw.toml:5:11: ") && e.contains("serve nothing"),
        "{e}"
    );
    let e = err(&config("tcp = \"127.0.0.1:1\"\nexports = [\"a\", \"a\"]"));
    assert!(
        e.starts_with("/etc/pnfsgw/gw.toml:5:17: ") && e.contains("twice"),
        "{e}"
    );
    let e = err(&config("tcp = \"127.0.0.1:1\"\nunix = \"/run/x.sock\""));
    assert!(
        e.starts_with("/etc/pnfsgw/gw.toml:3:1: ") && e.contains("exactly one"),
        "{e}"
    );
    // The same address as a plain listener.
    let text = config("tcp = \"127.0.0.1:10809\"").replace(
        "[[nbd.listener]]\n",
        "[nbd]\ntcp = [\"127.0.0.1:10809\"]\n[[nbd.listener]]\n",
    );
    let e = err(&text);
    assert!(
        e.starts_with("/etc/pnfsgw/gw.toml:6:7: ") && e.contains("already"),
        "{e}"
    );
}
