//! TLS for every listener: the self-signed certificate made at first start, and the rustls server
//! configuration built from the configured certificate and key files.
//!
//! The ring provider is passed explicitly so that building a configuration never depends on a
//! process-wide default provider having been installed (tests build configurations in parallel).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, SupportedProtocolVersion};
use serde::{Deserialize, Serialize};

/// File mode of the generated private key: readable by the server's user only.
const KEY_FILE_MODE: u32 = 0o600;
/// File mode of the generated certificate: public data, but nothing in the data folder is
/// readable by other users (a readable file there tells what the folder holds).
const CERT_FILE_MODE: u32 = 0o600;
/// Mode of a TLS directory we create ourselves (it holds the private key).
const TLS_DIR_MODE: u32 = 0o700;

static TLS12_AND_UP: [&SupportedProtocolVersion; 2] =
    [&rustls::version::TLS13, &rustls::version::TLS12];
static TLS13_ONLY: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];

/// Lowest TLS version a listener accepts. Spelled `"1.2"` / `"1.3"` in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TlsMin {
    /// TLS 1.2 and TLS 1.3.
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}

impl TlsMin {
    /// The protocol versions a server with this minimum offers, newest first.
    pub fn versions(self) -> &'static [&'static SupportedProtocolVersion] {
        match self {
            TlsMin::Tls12 => &TLS12_AND_UP,
            TlsMin::Tls13 => &TLS13_ONLY,
        }
    }

    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMin::Tls12 => "1.2",
            TlsMin::Tls13 => "1.3",
        }
    }
}

impl std::fmt::Display for TlsMin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a certificate could not be made or loaded. Every variant names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: cannot write: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{}: not a valid PEM certificate file: {source}", path.display())]
    BadCertificate {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{}: no certificate found (expected a PEM \"CERTIFICATE\" block)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: no usable private key found (expected a PEM PKCS#8, PKCS#1 or SEC1 key): {source}", path.display())]
    BadKey {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{} and {} do not form a usable certificate and key pair: {source}", cert.display(), key.display())]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error(
        "{} exists but {} does not; refusing to overwrite it with a self-signed pair (remove it or fix the path)",
        existing.display(),
        missing.display()
    )]
    HalfPresent { existing: PathBuf, missing: PathBuf },
    #[error("cannot generate a self-signed certificate for {hostname:?}: {source}")]
    Generate {
        hostname: String,
        source: rcgen::Error,
    },
    #[error("TLS configuration refused: {0}")]
    Config(rustls::Error),
}

/// Makes a self-signed certificate for `hostname` unless both files already exist.
///
/// Returns `Ok(true)` when files were written. The SANs are `hostname`, `localhost`, `127.0.0.1` and
/// `::1`, so local clients can verify the server by any of those names. If exactly one of the two
/// files exists it is left alone and an error is returned: it may be a real certificate (or key)
/// whose partner path is misconfigured, and overwriting it would lose it.
pub fn ensure_self_signed(
    cert_path: &Path,
    key_path: &Path,
    hostname: &str,
) -> Result<bool, TlsError> {
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => return Ok(false),
        (true, false) => {
            return Err(TlsError::HalfPresent {
                existing: cert_path.to_owned(),
                missing: key_path.to_owned(),
            });
        }
        (false, true) => {
            return Err(TlsError::HalfPresent {
                existing: key_path.to_owned(),
                missing: cert_path.to_owned(),
            });
        }
        (false, false) => {}
    }
    write_self_signed(cert_path, key_path, hostname)?;
    Ok(true)
}

/// Makes a self-signed certificate and key for `hostname` and writes them, each durably.
fn write_self_signed(cert_path: &Path, key_path: &Path, hostname: &str) -> Result<(), TlsError> {
    let mut names = vec![hostname.to_owned()];
    for extra in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(extra)) {
            names.push(extra.to_owned());
        }
    }
    let generate_err = |source| TlsError::Generate {
        hostname: hostname.to_owned(),
        source,
    };
    let key_pair = rcgen::KeyPair::generate().map_err(generate_err)?;
    let mut params = rcgen::CertificateParams::new(names).map_err(generate_err)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    let cert = params.self_signed(&key_pair).map_err(generate_err)?;

    // The key goes first: a crash between the two writes then leaves a lone key, which the
    // HalfPresent check reports, never a certificate without its key silently in use.
    write_durably(key_path, key_pair.serialize_pem().as_bytes(), KEY_FILE_MODE)?;
    if let Err(e) = write_durably(cert_path, cert.pem().as_bytes(), CERT_FILE_MODE) {
        // Do not leave a lone key behind (e.g. the disk filled up): the next start would refuse it
        // as a half-present pair instead of trying again.
        let _ = fs::remove_file(key_path);
        return Err(e);
    }
    Ok(())
}

/// Whether `cert_path` holds a certificate like the ones [`ensure_self_signed`] makes for
/// `hostname`: one certificate, issued by itself, whose subject is `CN=hostname`. A certificate
/// from a CA (or anyone else's self-signed one) never matches, so it is never replaced.
pub fn is_own_self_signed(cert_path: &Path, hostname: &str) -> bool {
    let Ok(pem) = fs::read(cert_path) else {
        return false;
    };
    let Ok(certs) = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>() else {
        return false;
    };
    let [cert] = certs.as_slice() else {
        return false;
    };
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert) else {
        return false;
    };
    let subject = parsed.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok());
    parsed.issuer() == subject
        && subject.iter().count() == 1
        && cn.is_some_and(|cn| cn.eq_ignore_ascii_case(hostname))
}

/// Replaces the self-signed certificate and key with new ones for `hostname` (the host name
/// changed). The key is written first, then the certificate, each through a temporary file and a
/// rename: a crash between the two renames would leave a pair that does not match, which the
/// next start reports by name.
pub fn regenerate_self_signed(
    cert_path: &Path,
    key_path: &Path,
    hostname: &str,
) -> Result<(), TlsError> {
    write_self_signed(cert_path, key_path, hostname)
}

/// Writes `data` to `path` via a temporary file, fsyncing the file and then its directory so the
/// new name survives a crash.
fn write_durably(path: &Path, data: &[u8], mode: u32) -> Result<(), TlsError> {
    let write_err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(TLS_DIR_MODE)
            .create(&dir)
            .map_err(write_err)?;
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        // Best effort: the error we report is the original one.
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(write_err)
}

/// Builds the server TLS configuration from PEM files: the certificate chain (leaf first) and the
/// private key (PKCS#8, PKCS#1 or SEC1).
pub fn load_server_config(
    cert_path: &Path,
    key_path: &Path,
    min_version: TlsMin,
) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_pem = fs::read(cert_path).map_err(|source| TlsError::Read {
        path: cert_path.to_owned(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::BadCertificate {
            path: cert_path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_owned(),
        });
    }

    let key_pem = fs::read(key_path).map_err(|source| TlsError::Read {
        path: key_path.to_owned(),
        source,
    })?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|source| TlsError::BadKey {
        path: key_path.to_owned(),
        source,
    })?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(min_version.versions())
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|source| TlsError::Mismatch {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
            source,
        })?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    fn paths(dir: &tempfile::TempDir) -> (PathBuf, PathBuf) {
        (
            dir.path().join("tls/cert.pem"),
            dir.path().join("tls/key.pem"),
        )
    }

    fn client_config(
        cert_path: &Path,
        versions: &[&'static SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        let pem = fs::read(cert_path).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    /// Runs one echo exchange over TLS; returns the negotiated version as the client saw it.
    async fn handshake(
        server: Arc<ServerConfig>,
        client: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> io::Result<rustls::ProtocolVersion> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(server);
        let server_task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let mut tls = acceptor.accept(tcp).await?;
            let mut buf = [0u8; 5];
            tls.read_exact(&mut buf).await?;
            tls.write_all(&buf).await?;
            tls.shutdown().await?;
            io::Result::Ok(())
        });

        let connector = TlsConnector::from(client);
        let name = rustls::pki_types::ServerName::try_from(server_name.to_owned()).unwrap();
        let tcp = TcpStream::connect(addr).await?;
        let client_result = async {
            let mut tls = connector.connect(name, tcp).await?;
            tls.write_all(b"hello").await?;
            let mut buf = [0u8; 5];
            tls.read_exact(&mut buf).await?;
            assert_eq!(&buf, b"hello");
            let version = tls.get_ref().1.protocol_version();
            io::Result::Ok(version.expect("negotiated version"))
        }
        .await;
        let server_result = server_task.await.expect("server task");
        let version = client_result?;
        server_result?;
        Ok(version)
    }

    #[test]
    fn own_self_signed_certificates_are_recognised_and_regenerated() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = paths(&dir);
        assert!(!is_own_self_signed(&cert, "old.example.org"), "no file");
        ensure_self_signed(&cert, &key, "old.example.org").unwrap();
        assert!(is_own_self_signed(&cert, "old.example.org"));
        assert!(is_own_self_signed(&cert, "OLD.example.org"));
        assert!(!is_own_self_signed(&cert, "other.example.org"));
        regenerate_self_signed(&cert, &key, "new.example.org").unwrap();
        assert!(is_own_self_signed(&cert, "new.example.org"));
        assert!(!is_own_self_signed(&cert, "old.example.org"));
        // The new pair loads and matches.
        load_server_config(&cert, &key, TlsMin::Tls12).unwrap();
        // A chain (leaf and CA) is never ours.
        let pem = fs::read_to_string(&cert).unwrap();
        fs::write(&cert, format!("{pem}{pem}")).unwrap();
        assert!(!is_own_self_signed(&cert, "new.example.org"));
    }

    #[test]
    fn generates_once_with_private_key_mode() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = paths(&dir);
        assert!(ensure_self_signed(&cert, &key, "mail.example.org").unwrap());
        let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            fs::read_to_string(&cert)
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
        assert!(fs::read_to_string(&key).unwrap().contains("PRIVATE KEY"));
        assert!(!dir.path().join("tls/key.pem.tmp").exists());

        let before = fs::read(&cert).unwrap();
        assert!(!ensure_self_signed(&cert, &key, "mail.example.org").unwrap());
        assert_eq!(fs::read(&cert).unwrap(), before, "existing files are kept");
    }

    #[test]
    fn refuses_to_overwrite_a_lone_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = paths(&dir);
        fs::create_dir_all(cert.parent().unwrap()).unwrap();
        fs::write(&cert, "mine").unwrap();
        let err = ensure_self_signed(&cert, &key, "localhost").unwrap_err();
        assert!(matches!(err, TlsError::HalfPresent { .. }));
        assert!(err.to_string().contains("key.pem"), "{err}");
        assert_eq!(fs::read_to_string(&cert).unwrap(), "mine");
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = paths(&dir);
        let err = load_server_config(&cert, &key, TlsMin::Tls12).unwrap_err();
        assert!(err.to_string().contains("cert.pem"), "{err}");

        fs::create_dir_all(cert.parent().unwrap()).unwrap();
        fs::write(&cert, "not pem at all\n").unwrap();
        fs::write(&key, "").unwrap();
        let err = load_server_config(&cert, &key, TlsMin::Tls12).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        assert!(err.to_string().contains("cert.pem"), "{err}");

        let other = tempfile::tempdir().unwrap();
        let (cert2, key2) = paths(&other);
        ensure_self_signed(&cert2, &key2, "localhost").unwrap();
        fs::copy(&cert2, &cert).unwrap();
        let err = load_server_config(&cert, &key, TlsMin::Tls12).unwrap_err();
        assert!(matches!(err, TlsError::BadKey { .. }), "{err}");
        assert!(err.to_string().contains("key.pem"), "{err}");

        // A key from another pair.
        ensure_self_signed(
            &dir.path().join("b/cert.pem"),
            &dir.path().join("b/key.pem"),
            "localhost",
        )
        .unwrap();
        fs::copy(dir.path().join("b/key.pem"), &key).unwrap();
        let err = load_server_config(&cert, &key, TlsMin::Tls12).unwrap_err();
        assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
    }

    #[test]
    fn version_lists() {
        assert_eq!(
            TlsMin::Tls12.versions(),
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        );
        assert_eq!(TlsMin::Tls13.versions(), &[&rustls::version::TLS13]);
    }

    #[tokio::test]
    async fn real_handshake_with_generated_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = paths(&dir);
        ensure_self_signed(&cert, &key, "mail.example.org").unwrap();
        let server = load_server_config(&cert, &key, TlsMin::Tls12).unwrap();

        for name in ["mail.example.org", "localhost", "127.0.0.1", "::1"] {
            let client = client_config(&cert, rustls::DEFAULT_VERSIONS);
            let version = handshake(server.clone(), client, name).await.unwrap();
            assert_eq!(version, rustls::ProtocolVersion::TLSv1_3, "{name}");
        }

        let tls12_only = client_config(&cert, &[&rustls::version::TLS12]);
        let version = handshake(server, tls12_only, "localhost").await.unwrap();
        assert_eq!(version, rustls::ProtocolVersion::TLSv1_2);
    }

    #[tokio::test]
    async fn tls13_minimum_refuses_a_tls12_client() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = paths(&dir);
        ensure_self_signed(&cert, &key, "localhost").unwrap();
        let server = load_server_config(&cert, &key, TlsMin::Tls13).unwrap();

        let tls12_only = client_config(&cert, &[&rustls::version::TLS12]);
        assert!(
            handshake(server.clone(), tls12_only, "localhost")
                .await
                .is_err()
        );

        let client = client_config(&cert, rustls::DEFAULT_VERSIONS);
        let version = handshake(server, client, "localhost").await.unwrap();
        assert_eq!(version, rustls::ProtocolVersion::TLSv1_3);
    }
}

/// The server's TLS configuration, replaceable at run time (SIGHUP) without dropping sessions:
/// sessions keep the acceptor they started with, new handshakes use the new certificate.
#[derive(Clone)]
pub struct TlsReloader {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    min: TlsMin,
    current: Arc<std::sync::RwLock<Arc<rustls::ServerConfig>>>,
}

impl TlsReloader {
    pub fn new(cert: &Path, key: &Path, min: TlsMin) -> Result<TlsReloader, TlsError> {
        let cfg = load_server_config(cert, key, min)?;
        Ok(TlsReloader {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            min,
            current: Arc::new(std::sync::RwLock::new(cfg)),
        })
    }

    /// Reads the certificate and key again; on error the old ones stay in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let cfg = load_server_config(&self.cert, &self.key, self.min)?;
        if let Ok(mut cur) = self.current.write() {
            *cur = cfg;
        }
        Ok(())
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let cfg = match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        tokio_rustls::TlsAcceptor::from(cfg)
    }
}
