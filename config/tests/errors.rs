//! Every class of configuration error, with the exact FILE:LINE:COL it must name.

use std::path::Path;

use pnfs_config::{
    parse_str, Config, ConfigError, ConfigErrorKind, DataPath, Frontend, HostIdentity,
};

const GOOD_HEAD: &str =
    "[mds]\naddresses = [\"127.0.0.1:2049\"]\n[nbd]\ntcp = [\"127.0.0.1:10809\"]\n";

/// A fixed host identity, so that the defaults derived from it are known.
fn host() -> HostIdentity {
    HostIdentity {
        machine_name: "host1".into(),
        machine_id: "0123456789abcdef0123456789abcdef".into(),
    }
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_str(Path::new("/etc/pnfsgw/gw.toml"), text, &host())
}

/// The error for `text`, as printed; with the kind checked.
fn err(text: &str, kind: ConfigErrorKind) -> String {
    let e = parse(text).expect_err("must be rejected");
    assert_eq!(e.kind, kind, "{e}");
    e.to_string()
}

fn starts(actual: &str, prefix: &str) {
    assert!(
        actual.starts_with(prefix),
        "expected {prefix:?}…, got {actual:?}"
    );
}

#[test]
fn instances_with_other_control_sockets_get_other_client_owners() {
    let device = "[[device]]\nname = \"d\"\npath = \"/f\"\n";
    let a = parse(&format!("{GOOD_HEAD}{device}")).unwrap();
    let b = parse(&format!(
        "{GOOD_HEAD}[control]\nsocket = \"/run/pnfsgw/b.sock\"\n{device}"
    ))
    .unwrap();
    assert_ne!(a.mds.client_owner, b.mds.client_owner);
    assert_eq!(
        b.mds.client_owner,
        "pnfsgw:0123456789abcdef0123456789abcdef:/run/pnfsgw/b.sock"
    );
    // An explicit owner is kept as written.
    let head = GOOD_HEAD.replace("[mds]\n", "[mds]\nclient_owner = \"pnfsgw:gw7\"\n");
    let c = parse(&format!("{head}{device}")).unwrap();
    assert_eq!(c.mds.client_owner, "pnfsgw:gw7");
}

#[test]
fn a_minimal_config_gets_the_documented_defaults() {
    let c = parse(&format!(
        "{GOOD_HEAD}[[device]]\nname = \"d\"\npath = \"/f\"\n"
    ))
    .unwrap();
    assert_eq!(c.mds.addresses[0].to_string(), "127.0.0.1:2049");
    assert_eq!(c.mds.auth.machine_name, "host1");
    assert_eq!(
        c.mds.client_owner,
        "pnfsgw:0123456789abcdef0123456789abcdef:/run/pnfsgw/control.sock"
    );
    assert_eq!(c.mds.lease_margin_ms, pnfs_config::LEASE_MARGIN_DEFAULT_MS);
    let d = &c.devices[0];
    assert_eq!(d.frontends, vec![Frontend::Nbd]);
    assert_eq!(d.export, "d");
    assert!(!d.read_only);
    assert_eq!((d.queues, d.depth), (1, 128));
    assert_eq!(d.block_size, None);
    assert_eq!(d.data_path, DataPath::Pnfs);
    assert_eq!(c.control.socket, Path::new("/run/pnfsgw/control.sock"));
}

#[test]
fn syntax_error() {
    let e = err("[mds\naddresses = []\n", ConfigErrorKind::Syntax);
    starts(&e, "/etc/pnfsgw/gw.toml:1:5: ");
}

#[test]
fn unknown_key_names_the_key() {
    let text = format!("{GOOD_HEAD}[[device]]\nname = \"d\"\npath = \"/f\"\nreadonly = true\n");
    let e = err(&text, ConfigErrorKind::Syntax);
    starts(&e, "/etc/pnfsgw/gw.toml:8:1: ");
    assert!(e.contains("readonly"), "{e}");
}

#[test]
fn unknown_table() {
    let e = err(
        &format!("{GOOD_HEAD}[nfs]\nx = 1\n"),
        ConfigErrorKind::Syntax,
    );
    starts(&e, "/etc/pnfsgw/gw.toml:5:2: ");
    assert!(e.contains("nfs"), "{e}");
}

#[test]
fn unknown_key_in_nested_table() {
    let e = err(
        "[mds]\naddresses = [\"a:1\"]\n[mds.auth]\nuidd = 3\n",
        ConfigErrorKind::Syntax,
    );
    starts(&e, "/etc/pnfsgw/gw.toml:4:1: ");
}

#[test]
fn wrong_type() {
    let text = format!("{GOOD_HEAD}[[device]]\nname = \"d\"\npath = \"/f\"\nread_only = \"yes\"\n");
    let e = err(&text, ConfigErrorKind::Syntax);
    starts(&e, "/etc/pnfsgw/gw.toml:8:13: ");
}

#[test]
fn negative_number() {
    let e = err(
        &format!("{GOOD_HEAD}[ublk]\nqueues = -1\n"),
        ConfigErrorKind::Syntax,
    );
    starts(&e, "/etc/pnfsgw/gw.toml:6:10: ");
}

#[test]
fn missing_required_key() {
    let e = err(
        &format!("{GOOD_HEAD}[[device]]\nname = \"d\"\n"),
        ConfigErrorKind::Syntax,
    );
    assert!(e.contains("missing field `path`"), "{e}");
    // At the [[device]] header that lacks it.
    starts(&e, "/etc/pnfsgw/gw.toml:5:1: ");
}

#[test]
fn zero_queues() {
    let e = err(
        &format!("{GOOD_HEAD}[ublk]\nqueues = 0\n"),
        ConfigErrorKind::Invalid,
    );
    assert_eq!(
        e,
        "/etc/pnfsgw/gw.toml:6:10: queues = 0 is out of range: it must be between 1 and 64"
    );
}

#[test]
fn depth_over_the_limit() {
    let text = format!(
        "{GOOD_HEAD}[[device]]\nname = \"d\"\npath = \"/f\"\nfrontends = [\"ublk\"]\ndepth = 5000\n"
    );
    let e = err(&text, ConfigErrorKind::Invalid);
    assert_eq!(
        e,
        "/etc/pnfsgw/gw.toml:9:9: depth = 5000 is out of range: it must be between 1 and 4096"
    );
}

#[test]
fn queue_settings_without_ublk() {
    let text = format!("{GOOD_HEAD}[[device]]\nname = \"d\"\npath = \"/f\"\nqueues = 2\n");
    starts(
        &err(&text, ConfigErrorKind::Invalid),
        "/etc/pnfsgw/gw.toml:8:10: queues is set",
    );
}

#[test]
fn ublk_recovery_defaults_off_follows_the_ublk_table_and_needs_a_ublk_frontend() {
    let dev = |extra: &str| {
        format!("[[device]]\nname = \"d\"\npath = \"/f\"\nfrontends = [\"ublk\"]\n{extra}")
    };
    let off = parse(&format!("{GOOD_HEAD}{}", dev(""))).unwrap();
    assert!(!off.ublk.recovery && !off.devices[0].ublk_recovery);
    let on = parse(&format!("{GOOD_HEAD}[ublk]\nrecovery = true\n{}", dev(""))).unwrap();
    assert!(on.ublk.recovery && on.devices[0].ublk_recovery);
    let device_off = parse(&format!(
        "{GOOD_HEAD}[ublk]\nrecovery = true\n{}",
        dev("recovery = false\n")
    ))
    .unwrap();
    assert!(!device_off.devices[0].ublk_recovery);
    // An NBD-only device never gets it from [ublk].
    let nbd_only = parse(&format!(
        "{GOOD_HEAD}[ublk]\nrecovery = true\n[[device]]\nname = \"d\"\npath = \"/f\"\n"
    ))
    .unwrap();
    assert!(!nbd_only.devices[0].ublk_recovery);
    let text = format!("{GOOD_HEAD}[[device]]\nname = \"d\"\npath = \"/f\"\nrecovery = true\n");
    assert_eq!(
        err(&text, ConfigErrorKind::Invalid),
        "/etc/pnfsgw/gw.toml:8:12: recovery is set but device \"d\" has no ublk frontend"
    );
    let text = format!("{GOOD_HEAD}[ublk]\nrecovery = \"yes\"\n");
    starts(
        &err(&text, ConfigErrorKind::Syntax),
        "/etc/pnfsgw/gw.toml:6:12: ",
    );
}

#[test]
fn duplicate_device_name() {
    let text = format!(
        "{GOOD_HEAD}[[device]]\nname = \"d\"\npath = \"/f\"\n[[device]]\nname = \"d\"\npath = \"/g\"\n"
    );
    let e = err(&text, ConfigErrorKind::Invalid);
    assert_eq!(
        e,
        "/etc/pnfsgw/gw.toml:9:8: duplicate device name \"d\" (first used at line 6)"
    );
}

#[test]
fn duplicate_export_name() {
    let text = format!(
        "{GOOD_HEAD}[[device]]\nname = \"a\"\npath = \"/f\"\n[[device]]\nname = \"b\"\npath = \"/g\"\nexport = \"a\"\n"
    );
    let e = err(&text, ConfigErrorKind::Invalid);
    assert_eq!(
        e,
        "/etc/pnfsgw/gw.toml:11:10: duplicate NBD export name \"a\" (first used at line 6)"
    );
}

#[test]
fn bad_mds_address() {
    let e = err(
        "[mds]\naddresses = [\"a:1\", \"mds\"]\n",
        ConfigErrorKind::Invalid,
    );
    starts(&e, "/etc/pnfsgw/gw.toml:2:21: \"mds\" is not host:port");
    let e = err("[mds]\naddresses = []\n", ConfigErrorKind::Invalid);
    starts(&e, "/etc/pnfsgw/gw.toml:2:13: addresses is empty");
}

#[test]
fn bad_nbd_address() {
    let e = err(
        "[mds]\naddresses = [\"a:1\"]\n[nbd]\ntcp = [\"localhost:10809\"]\n",
        ConfigErrorKind::Invalid,
    );
    starts(
        &e,
        "/etc/pnfsgw/gw.toml:4:8: \"localhost:10809\" is not an IP address and port",
    );
    let e = err(
        "[mds]\naddresses = [\"a:1\"]\n[nbd]\ntcp = [\"127.0.0.1:0\"]\n",
        ConfigErrorKind::Invalid,
    );
    starts(&e, "/etc/pnfsgw/gw.toml:4:8: NBD listen port 0");
}

#[test]
fn relative_paths() {
    let text = format!("{GOOD_HEAD}[[device]]\nname = \"d\"\npath = \"vms/f\"\n");
    starts(
        &err(&text, ConfigErrorKind::Invalid),
        "/etc/pnfsgw/gw.toml:7:8: path \"vms/f\" on the MDS: must be an absolute path",
    );
    let text = format!("{GOOD_HEAD}[volumes]\nsearch = [\"/dev/sda\", \"vol.img\"]\n");
    starts(
        &err(&text, ConfigErrorKind::Invalid),
        "/etc/pnfsgw/gw.toml:6:23: volume search entry \"vol.img\"",
    );
    let text = "[mds]\naddresses = [\"a:1\"]\n[nbd]\nunix = [\"nbd.sock\"]\n";
    starts(
        &err(text, ConfigErrorKind::Invalid),
        "/etc/pnfsgw/gw.toml:4:9: NBD unix socket \"nbd.sock\"",
    );
    let text = format!("{GOOD_HEAD}[control]\nsocket = \"/run/../x\"\n");
    starts(
        &err(&text, ConfigErrorKind::Invalid),
        "/etc/pnfsgw/gw.toml:6:10: control socket",
    );
}

#[test]
fn glob_only_in_the_last_component() {
    let text = format!("{GOOD_HEAD}[volumes]\nsearch = [\"/dev/*/x\"]\n");
    starts(
        &err(&text, ConfigErrorKind::Invalid),
        "/etc/pnfsgw/gw.toml:6:11: volume search entry",
    );
}

/// A volume search pattern that is not one (an unclosed `[`) is reported at its entry, with
/// where in the name and why.
#[test]
fn bad_glob_pattern_is_reported_at_its_entry() {
    let text = format!("{GOOD_HEAD}[volumes]\nsearch = [\"/dev/sda\", \"/dev/sd[b\"]\n");
    starts(
        &err(&text, ConfigErrorKind::Invalid),
        "/etc/pnfsgw/gw.toml:6:23: volume search entry \"/dev/sd[b\": \"sd[b\" is not a pattern: ",
    );
}

#[test]
fn unknown_frontend_and_data_path() {
    let text = format!(
        "{GOOD_HEAD}[[device]]\nname = \"d\"\npath = \"/f\"\nfrontends = [\"nbd\", \"iscsi\"]\n"
    );
    assert_eq!(
        err(&text, ConfigErrorKind::Invalid),
        "/etc/pnfsgw/gw.toml:8:21: unknown frontend \"iscsi\": expected \"nbd\" or \"ublk\""
    );
    let text = format!("{GOOD_HEAD}[[device]]\nname = \"d\"\npath = \"/f\"\ndata_path = \"nfs\"\n");
    starts(
        &err(&text, ConfigErrorKind::Invalid),
        "/etc/pnfsgw/gw.toml:8:13: unknown data_path",
    );
}

#[test]
fn nbd_device_without_listener() {
    let text = "[mds]\naddresses = [\"a:1\"]\n[[device]]\nname = \"d\"\npath = \"/f\"\n";
    starts(
        &err(text, ConfigErrorKind::Invalid),
        "/etc/pnfsgw/gw.toml:3:1: device \"d\" uses the nbd frontend",
    );
}

#[test]
fn bad_block_size_and_name() {
    let text = format!("{GOOD_HEAD}[[device]]\nname = \"d\"\npath = \"/f\"\nblock_size = 3000\n");
    starts(
        &err(&text, ConfigErrorKind::Invalid),
        "/etc/pnfsgw/gw.toml:8:14: block_size = 3000 must be a power of two",
    );
    let text = format!("{GOOD_HEAD}[[device]]\nname = \"a b\"\npath = \"/f\"\n");
    starts(
        &err(&text, ConfigErrorKind::Invalid),
        "/etc/pnfsgw/gw.toml:6:8: device name \"a b\"",
    );
}

#[test]
fn no_devices() {
    let e = err(GOOD_HEAD, ConfigErrorKind::Invalid);
    starts(&e, "/etc/pnfsgw/gw.toml:5:1: no [[device]] table");
}

#[test]
fn too_many_devices() {
    let mut text = GOOD_HEAD.to_owned();
    for i in 0..=pnfs_config::DEVICES_MAX {
        text.push_str(&format!("[[device]]\nname = \"d{i}\"\npath = \"/f{i}\"\n"));
    }
    // The first device table is on line 5; each takes 3 lines.
    let line = 5 + 3 * pnfs_config::DEVICES_MAX;
    starts(
        &err(&text, ConfigErrorKind::Invalid),
        &format!("/etc/pnfsgw/gw.toml:{line}:1: too many entries in [[device]]: at most 1024"),
    );
}

#[test]
fn file_errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("pnfs-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.toml");
    let e = pnfs_config::load(&missing).unwrap_err();
    assert_eq!(e.kind, ConfigErrorKind::Io);
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read", missing.display())),
        "{e}"
    );

    let big = dir.join("big.toml");
    let too_big = usize::try_from(pnfs_config::CONFIG_FILE_MAX_BYTES).unwrap() + 1;
    std::fs::write(&big, "#".repeat(too_big)).unwrap();
    let e = pnfs_config::load(&big).unwrap_err();
    assert_eq!(e.kind, ConfigErrorKind::Unreadable);
    assert_eq!(
        e.to_string(),
        format!("{}: larger than the limit of 1048576 bytes", big.display())
    );

    let bad_utf8 = dir.join("latin1.toml");
    std::fs::write(&bad_utf8, b"[mds]\n# caf\xe9\n").unwrap();
    let e = pnfs_config::load(&bad_utf8).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}:2:6: not valid UTF-8", bad_utf8.display())
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_example_config_is_accepted() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/pnfsgw.example.toml");
    let c = pnfs_config::load(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.devices.len(), 2);
    assert_eq!(c.devices[1].frontends, vec![Frontend::Nbd, Frontend::Ublk]);
    assert_eq!((c.devices[1].queues, c.devices[1].depth), (2, 64));
    assert!(!c.ublk.recovery && c.devices[1].ublk_recovery);
    assert_eq!(c.nbd.unix[0], Path::new("/run/pnfsgw/nbd.sock"));
}

#[test]
fn volume_search_expands_globs_in_order_without_duplicates() {
    let dir = std::env::temp_dir().join(format!("pnfs-config-glob-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for n in ["vol1.img", "vol0.img", "other.img", "vol10.img"] {
        std::fs::write(dir.join(n), b"").unwrap();
    }
    let text = format!(
        "{GOOD_HEAD}[volumes]\nsearch = [\"{d}/vol[1-9]*.img\", \"{d}/vol?.img\", \"{d}/missing.img\", \"{d}/*.img\", \"/nonexistent-dir/*\"]\n\
         [[device]]\nname = \"d\"\npath = \"/f\"\n",
        d = dir.display()
    );
    let c = parse(&text).unwrap();
    let got = c.volumes.candidates().unwrap();
    // The character class takes vol1 and vol10 but not vol0, which comes with `vol?`.
    let want: Vec<std::path::PathBuf> = [
        "vol1.img",
        "vol10.img",
        "vol0.img",
        "missing.img",
        "other.img",
    ]
    .iter()
    .map(|n| dir.join(n))
    .collect();
    assert_eq!(got, want);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn metrics_listener_is_loopback_unless_allow_remote() {
    let device = "[[device]]\nname = \"d\"\npath = \"/f\"\n";
    // Absent: no listener.
    let c = parse(&format!("{GOOD_HEAD}{device}")).unwrap();
    assert_eq!(c.metrics, None);
    // Loopback, v4 and v6.
    for addr in ["127.0.0.1:9810", "[::1]:9810", "127.0.0.2:9811"] {
        let c = parse(&format!(
            "{GOOD_HEAD}[metrics]\nlisten = \"{addr}\"\n{device}"
        ))
        .unwrap();
        assert_eq!(c.metrics.unwrap().listen, addr.parse().unwrap());
    }
    // Not loopback: refused at the value, naming the way out.
    for addr in ["0.0.0.0:9810", "192.0.2.7:9810", "[::]:9810"] {
        let e = err(
            &format!("{GOOD_HEAD}[metrics]\nlisten = \"{addr}\"\n{device}"),
            ConfigErrorKind::Invalid,
        );
        starts(&e, "/etc/pnfsgw/gw.toml:6:10: ");
        assert!(e.contains("not a loopback address"), "{e}");
        assert!(e.contains("allow_remote = true"), "{e}");
    }
    // ... unless allowed.
    let c = parse(&format!(
        "{GOOD_HEAD}[metrics]\nlisten = \"0.0.0.0:9810\"\nallow_remote = true\n{device}"
    ))
    .unwrap();
    assert_eq!(c.metrics.unwrap().listen, "0.0.0.0:9810".parse().unwrap());
    // Port 0, a host name and a missing listen key are errors too.
    let e = err(
        &format!("{GOOD_HEAD}[metrics]\nlisten = \"127.0.0.1:0\"\n{device}"),
        ConfigErrorKind::Invalid,
    );
    starts(&e, "/etc/pnfsgw/gw.toml:6:10: ");
    assert!(e.contains("port 0"), "{e}");
    let e = err(
        &format!("{GOOD_HEAD}[metrics]\nlisten = \"localhost:9810\"\n{device}"),
        ConfigErrorKind::Invalid,
    );
    starts(&e, "/etc/pnfsgw/gw.toml:6:10: ");
    let e = err(
        &format!("{GOOD_HEAD}[metrics]\nallow_remote = true\n{device}"),
        ConfigErrorKind::Syntax,
    );
    assert!(e.contains("missing field `listen`"), "{e}");
}
