//! A reverse proxy from Debian (nginx or Caddy) in front of the real server, for
//! tests/proxy.rs.
//!
//! [`Proxy::start`] makes a self-signed certificate for 127.0.0.1 and localhost with openssl,
//! runs `install.sh --root --proxy KIND` to render the site exactly as a VM gets it, moves it
//! onto loopback ports, points it at the test server's two ports, and runs the proxy in the
//! foreground as a child process (nginx as one process, `master_process off`, so no worker
//! switches user and a kill ends it all). Everything lives in a temporary folder.
//!
//! The TLS clients come from ureq (a dependency of the crate, with rustls): [`Proxy::agent`]
//! for whole HTTPS requests, and [`Proxy::tls_stream`] for a raw TLS byte stream (WebSocket
//! handshakes and hostile clients). The latter uses ureq's `unversioned::transport` connectors;
//! Cargo.lock pins ureq 3.5.2, and that module only changes in minor versions.

#![allow(dead_code)]

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::unversioned::resolver::{DefaultResolver, Resolver};
use ureq::unversioned::transport::time::{Duration as UreqDuration, Instant as UreqInstant};
use ureq::unversioned::transport::{
    ConnectionDetails, Connector, NextTimeout, RustlsConnector, TcpConnector, Transport,
    TransportAdapter,
};

use crate::common::{TempDir, TestApp};

/// How long any single read or write of a test client may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

pub use crate::common::find_program;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Caddy,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Caddy => "caddy",
        }
    }
}

/// True when the proxy and openssl are here. Without them the test is skipped with a message
/// naming the Debian packages, except under CI, where it fails (ci/proxy-deps.sh installs them).
pub fn proxy_tools_present(kind: Kind) -> bool {
    let test = format!("proxy ({})", kind.name());
    crate::common::programs_or_skip(&test, &[kind.name(), "openssl"], "bash ci/proxy-deps.sh")
        .is_some()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}

/// A self-signed certificate for localhost and 127.0.0.1, usable as its own trust anchor
/// (basicConstraints CA:FALSE: rustls refuses a CA certificate as a server's).
fn make_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    run(Command::new(find_program("openssl").expect("openssl"))
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    (cert, key)
}

/// The installed nginx site, moved onto loopback: `listen N` becomes `listen 127.0.0.1:N`
/// and the IPv6 listeners go (a test binds nothing outside 127.0.0.1). Nothing else changes.
fn nginx_site_on_loopback(site: &str) -> String {
    site.lines()
        .filter(|l| !l.trim_start().starts_with("listen [::]:"))
        .map(|l| match l.trim_start().strip_prefix("listen ") {
            Some(rest) => format!("    listen 127.0.0.1:{rest}"),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// nginx's main file around the installed site: everything it writes stays in `dir`.
fn nginx_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "master_process off;\n\
         daemon off;\n\
         worker_rlimit_nofile 8192;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n\
         \x20   access_log {d}/access.log;\n\
         \x20   client_body_temp_path {d}/client_body;\n\
         \x20   proxy_temp_path {d}/proxy;\n\
         \x20   fastcgi_temp_path {d}/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/uwsgi;\n\
         \x20   scgi_temp_path {d}/scgi;\n\
         \x20   default_type application/octet-stream;\n\
         \x20   include {d}/site.conf;\n\
         }}\n"
    )
}

/// The installed Caddyfile, moved onto loopback ports with the test certificate: global
/// options for the ports, storage in `dir` and no admin endpoint; the sites answer on
/// `localhost:PORT` and `127.0.0.1:PORT`, the HTTPS one with `tls CERT KEY` instead of an ACME
/// certificate. The sites' own directives are untouched.
fn caddyfile_on_loopback(
    caddyfile: &str,
    dir: &Path,
    (https, http): (u16, u16),
    (cert, key): (&Path, &Path),
) -> String {
    let global = format!(
        "{{\n\tadmin off\n\tdefault_bind 127.0.0.1\n\
         \thttp_port {http}\n\thttps_port {https}\n\
         \tstorage file_system {}\n",
        dir.join("caddy-data").display()
    );
    let site = format!(
        "https://localhost:{https}, https://127.0.0.1:{https} {{\n\ttls {} {}\n",
        cert.display(),
        key.display()
    );
    let plain = format!("http://localhost:{http}, http://127.0.0.1:{http} {{\n");
    let mut out = caddyfile.replacen("{\n", &global, 1);
    for (from, to) in [
        ("https://localhost {\n", site),
        ("http://localhost {\n", plain),
    ] {
        assert!(out.contains(from), "no {from:?} in:\n{caddyfile}");
        out = out.replacen(from, &to, 1);
    }
    out
}

pub struct Proxy {
    pub kind: Kind,
    child: Child,
    /// The TLS listener (443 on a VM).
    pub https: SocketAddr,
    /// The plain listener that redirects (80 on a VM).
    pub http: SocketAddr,
    pub cert_pem: Vec<u8>,
    pub dir: TempDir,
}

impl Proxy {
    /// The proxy with the site install.sh installs, in front of `app`.
    pub fn start(kind: Kind, app: &TestApp) -> Proxy {
        let dir = TempDir::new();
        let (cert, key) = make_certificate(&dir.0);
        let [https_port, http_port] = crate::common::free_ports();

        // install.sh enables the nginx site only when the certificate exists in its tree.
        let tree = dir.0.join("root");
        for file in [&cert, &key] {
            let inside = tree.join(file.strip_prefix("/").expect("absolute"));
            std::fs::create_dir_all(inside.parent().expect("parent")).expect("mkdir");
            std::fs::copy(file, &inside).expect("copy into the tree");
        }
        // Litestream plays no part here: a stand-in that passes install.sh's version check
        // keeps it from fetching the real one from PyPI.
        let litestream = dir.0.join("litestream");
        std::fs::write(&litestream, "#!/bin/sh\necho 0.5.17\n").expect("fake litestream");
        std::fs::set_permissions(&litestream, std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let said = run(Command::new("bash")
            .arg(repo_path("install.sh"))
            .arg("--root")
            .arg(&tree)
            .args(["--binary", env!("CARGO_BIN_EXE_wealthcoach")])
            .arg("--litestream")
            .arg(&litestream)
            .args([
                "--proxy",
                kind.name(),
                "--domain",
                "localhost",
                "--no-start",
            ])
            .args(["--port", &app.http.port().to_string()])
            .args(["--ws-port", &app.ws.port().to_string()])
            .args(["--https-port", &https_port.to_string()])
            .args(["--http-port", &http_port.to_string()])
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key));
        let installed = |rel: &str| {
            let path = tree.join(rel);
            std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}\ninstall.sh said:\n{said}", path.display()))
        };

        let log = std::fs::File::create(dir.0.join("proxy.out")).expect("log");
        let mut cmd = match kind {
            Kind::Nginx => {
                let site = installed("etc/nginx/sites-enabled/wealthcoach.conf");
                std::fs::write(dir.0.join("site.conf"), nginx_site_on_loopback(&site))
                    .expect("site");
                let conf = dir.0.join("nginx.conf");
                std::fs::write(&conf, nginx_conf(&dir.0)).expect("nginx.conf");
                let mut cmd = Command::new(find_program("nginx").expect("nginx"));
                cmd.arg("-p").arg(&dir.0);
                cmd.arg("-e").arg(dir.0.join("error.log"));
                cmd.arg("-c").arg(conf);
                cmd
            }
            Kind::Caddy => {
                let caddyfile = caddyfile_on_loopback(
                    &installed("etc/caddy/Caddyfile"),
                    &dir.0,
                    (https_port, http_port),
                    (&cert, &key),
                );
                let conf = dir.0.join("Caddyfile");
                std::fs::write(&conf, caddyfile).expect("Caddyfile");
                let mut cmd = Command::new(find_program("caddy").expect("caddy"));
                cmd.args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(conf);
                // Caddy keeps its state under HOME and XDG folders: all in the test folder.
                for var in ["HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"] {
                    cmd.env(var, &dir.0);
                }
                cmd
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", kind.name()));
        let mut proxy = Proxy {
            kind,
            child,
            https: SocketAddr::from(([127, 0, 0, 1], https_port)),
            http: SocketAddr::from(([127, 0, 0, 1], http_port)),
            cert_pem: std::fs::read(&cert).expect("cert"),
            dir,
        };
        proxy.wait_listening();
        proxy
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("proxy status") {
                panic!("{} exited ({status}):\n{}", self.kind.name(), self.logs());
            }
            let both = [self.https, self.http]
                .iter()
                .all(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok());
            if both {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen:\n{}",
                self.kind.name(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the proxy printed and logged, for failure messages.
    pub fn logs(&self) -> String {
        ["proxy.out", "error.log"]
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(self.dir.0.join(f)).unwrap_or_default();
                format!("--- {f}\n{text}")
            })
            .collect()
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{}", self.https, path)
    }

    fn ureq_config(&self) -> ureq::config::Config {
        let root = Certificate::from_pem(&self.cert_pem).expect("certificate PEM");
        ureq::Agent::config_builder()
            .tls_config(
                TlsConfig::builder()
                    .root_certs(RootCerts::new_with_certs(&[root]))
                    .build(),
            )
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(IO_TIMEOUT))
            .build()
    }

    /// An HTTPS client that trusts only this proxy's certificate, follows no redirects and
    /// returns 4xx/5xx as responses.
    pub fn agent(&self) -> ureq::Agent {
        self.ureq_config().new_agent()
    }

    /// A TLS connection to the proxy, verified against its certificate, as plain Read + Write.
    pub fn tls_stream(&self) -> TransportAdapter {
        tls_connect(self.https, &self.ureq_config())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A file of the repository.
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// TCP, then rustls, through ureq's connector chain, as a blocking byte stream.
fn tls_connect(addr: SocketAddr, config: &ureq::config::Config) -> TransportAdapter {
    let uri: ureq::http::Uri = format!("https://{addr}/").parse().expect("uri");
    let resolver = DefaultResolver::default();
    let connect_budget = NextTimeout {
        after: UreqDuration::Exact(IO_TIMEOUT),
        reason: ureq::Timeout::Connect,
        ..NextTimeout::default()
    };
    let addrs = resolver
        .resolve(&uri, config, connect_budget)
        .expect("resolve");
    let clock: Arc<dyn Fn() -> UreqInstant + Send + Sync> = Arc::new(UreqInstant::now);
    let details = ConnectionDetails {
        uri: &uri,
        addrs,
        config,
        request_level: false,
        resolver: &resolver,
        now: UreqInstant::now(),
        timeout: connect_budget,
        current_time: clock.clone(),
        run_connector: Arc::new(|_: &ConnectionDetails| Err(ureq::Error::ConnectionFailed)),
        register_shutdown: Arc::new(|_| Ok(())),
    };
    let transport =
        ().chain(TcpConnector::default())
            .chain(RustlsConnector::default())
            .connect(&details, None)
            .unwrap_or_else(|e| panic!("TLS connection to {addr}: {e}"))
            .expect("a transport");
    let mut stream = TransportAdapter::new(Box::new(transport) as Box<dyn Transport>, clock);
    stream.set_timeout(NextTimeout {
        per_read: Some(UreqDuration::Exact(IO_TIMEOUT)),
        per_write: Some(UreqDuration::Exact(IO_TIMEOUT)),
        ..NextTimeout::default()
    });
    stream
}

/// Writes all of `bytes`, stopping quietly at the first error (the peer may refuse midway).
pub fn write_until_refused(s: &mut impl Write, bytes: &[u8]) -> usize {
    let mut sent = 0;
    for piece in bytes.chunks(16 * 1024) {
        if s.write_all(piece).is_err() {
            break;
        }
        sent += piece.len();
    }
    sent
}

/// Threads of this process (the test server runs in it; the proxy does not).
pub fn thread_count() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("Threads line")
}
