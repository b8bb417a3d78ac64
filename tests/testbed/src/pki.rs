//! X.509 certificates for NBD-over-TLS tests, made at test time with `openssl` and laid out
//! as qemu's `tls-creds-x509` directories (which libnbd's `tls-certificates=DIR` reads too).
//!
//! ```text
//! server/  ca-cert.pem server-cert.pem server-key.pem   (what the gateway loads)
//! client/  ca-cert.pem client-cert.pem client-key.pem   (a client the CA signed)
//! rogue/   ca-cert.pem client-cert.pem client-key.pem   (trusts the server, but its own
//!                                                         certificate is from another CA)
//! anon/    ca-cert.pem                                   (no client certificate at all)
//! ```
//!
//! The server certificate names `localhost` and `127.0.0.1`, so clients that check the host
//! name (qemu, libnbd) accept it on loopback.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Result, TestbedError};
use crate::tools::find_tool;

/// Validity of the generated certificates.
const CERT_VALIDITY_DAYS: &str = "2";

/// The generated credential directories.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The server's directory.
    pub server: PathBuf,
    /// A client signed by the server's CA.
    pub client: PathBuf,
    /// A client whose certificate comes from another CA.
    pub rogue: PathBuf,
    /// A client without a certificate.
    pub anon: PathBuf,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestbedError {
    let what = what.into();
    move |source| TestbedError::Io { what, source }
}

fn openssl(tool: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(io(format!("running openssl {args:?}")))?;
    if !out.status.success() {
        return Err(TestbedError::Io {
            what: format!(
                "openssl {args:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
            source: std::io::Error::other("openssl failed"),
        });
    }
    Ok(())
}

/// A CA: self-signed certificate and key in `dir`.
fn make_ca(tool: &Path, dir: &Path, name: &str) -> Result<(String, String)> {
    let cert = dir.join(format!("{name}-cert.pem")).display().to_string();
    let key = dir.join(format!("{name}-key.pem")).display().to_string();
    openssl(
        tool,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            CERT_VALIDITY_DAYS,
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &key,
            "-out",
            &cert,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    )?;
    Ok((cert, key))
}

/// A leaf certificate signed by `ca`, written as `out_cert` / `out_key`.
fn make_leaf(
    tool: &Path,
    scratch: &Path,
    ca: &(String, String),
    cn: &str,
    ext: &str,
    out_cert: &Path,
    out_key: &Path,
) -> Result<()> {
    let csr = scratch.join(format!("{cn}.csr")).display().to_string();
    let extfile = scratch.join(format!("{cn}.ext"));
    std::fs::write(&extfile, ext).map_err(io(format!("writing {}", extfile.display())))?;
    let key = out_key.display().to_string();
    openssl(
        tool,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    )?;
    openssl(
        tool,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca.0,
            "-CAkey",
            &ca.1,
            "-CAcreateserial",
            "-days",
            CERT_VALIDITY_DAYS,
            "-extfile",
            &extfile.display().to_string(),
            "-out",
            &out_cert.display().to_string(),
        ],
    )
}

impl TestPki {
    /// Generates everything under `dir` (created if missing).
    pub fn generate(dir: &Path) -> Result<Self> {
        let tool = find_tool("openssl", "apt-get install openssl, or run tests/setup.sh")?;
        let scratch = dir.join("ca");
        let pki = Self {
            server: dir.join("server"),
            client: dir.join("client"),
            rogue: dir.join("rogue"),
            anon: dir.join("anon"),
        };
        for d in [&scratch, &pki.server, &pki.client, &pki.rogue, &pki.anon] {
            std::fs::create_dir_all(d).map_err(io(format!("creating {}", d.display())))?;
        }
        let ca = make_ca(&tool, &scratch, "pnfsgw-test-ca")?;
        let other_ca = make_ca(&tool, &scratch, "other-ca")?;
        for d in [&pki.server, &pki.client, &pki.rogue, &pki.anon] {
            std::fs::copy(&ca.0, d.join("ca-cert.pem"))
                .map_err(io(format!("copying the CA to {}", d.display())))?;
        }
        make_leaf(
            &tool,
            &scratch,
            &ca,
            "localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n",
            &pki.server.join("server-cert.pem"),
            &pki.server.join("server-key.pem"),
        )?;
        let client_ext =
            "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n";
        make_leaf(
            &tool,
            &scratch,
            &ca,
            "client",
            client_ext,
            &pki.client.join("client-cert.pem"),
            &pki.client.join("client-key.pem"),
        )?;
        make_leaf(
            &tool,
            &scratch,
            &other_ca,
            "rogue",
            client_ext,
            &pki.rogue.join("client-cert.pem"),
            &pki.rogue.join("client-key.pem"),
        )?;
        Ok(pki)
    }
}
