//! install.sh, the systemd units and the proxy templates, checked without a real system:
//! `install.sh --root` into a temporary tree, then `systemd-analyze verify --root` and
//! `systemd-analyze security --offline` on what it installed (no systemd as PID 1 needed).
//!
//! Needs bash and coreutils, and systemd-analyze (Debian package `systemd`) for the unit checks;
//! without it those two say SKIPPED, except under CI (`CI=true`), where they fail.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{TempDir, programs_or_skip, skip_unless_ci};

const BIN: &str = env!("CARGO_BIN_EXE_wealthcoach");
const UNITS: [&str; 3] = [
    "wealthcoach.service",
    "wealthcoach-backup.service",
    "wealthcoach-backup.timer",
];

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `install.sh --root TREE --binary <the built server> --no-start --domain … ARGS`.
fn install(tree: &Path, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(repo("install.sh"))
        .arg("--root")
        .arg(tree)
        .args(["--binary", BIN, "--no-start", "--domain", "api.example.com"])
        .args(args)
        .output()
        .expect("run install.sh")
}

fn install_ok(tree: &Path, args: &[&str]) -> String {
    let out = install(tree, args);
    let said = text(&out);
    assert!(out.status.success(), "install.sh failed:\n{said}");
    said
}

fn uninstall(tree: &Path) -> String {
    let out = Command::new("bash")
        .arg(repo("install.sh"))
        .arg("--root")
        .arg(tree)
        .arg("--uninstall")
        .output()
        .expect("run install.sh --uninstall");
    assert!(out.status.success(), "{}", text(&out));
    text(&out)
}

/// KEY=value lines of an env file (comments and blanks skipped), as systemd reads this one.
fn read_env(path: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .expect("env file")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=value");
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

/// What an operator does after the first run: choose an SMS provider.
fn configure_sms(tree: &Path) {
    let env = tree.join("etc/wealthcoach/env");
    let edited = std::fs::read_to_string(&env)
        .expect("env")
        .replace("#SMS_PROVIDER=webhook", "SMS_PROVIDER=webhook")
        .replace(
            "#SMS_WEBHOOK_URL=https://sms-gateway.example/send",
            "SMS_WEBHOOK_URL=https://sms-gateway.example/send",
        );
    std::fs::write(&env, edited).expect("edit env");
}

/// Every file and link under `dir` → its mode and SHA-256 (or link target). SQLite's `-shm`
/// file is left out: it is the WAL index in shared memory, rewritten whenever the database is
/// opened, and holds no data.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            if meta.is_dir() {
                out.push(path.clone());
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(dir, &mut paths);
    paths.retain(|p| !p.to_string_lossy().ends_with("-shm"));
    let files: Vec<&PathBuf> = paths
        .iter()
        .filter(|p| std::fs::symlink_metadata(p).expect("meta").is_file())
        .collect();
    let mut sums = HashMap::new();
    if !files.is_empty() {
        let out = Command::new("sha256sum")
            .args(&files)
            .output()
            .expect("sha256sum");
        assert!(out.status.success(), "{}", text(&out));
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let (sum, path) = line.split_once("  ").expect("sum line");
            sums.insert(PathBuf::from(path), sum.to_string());
        }
    }
    paths
        .iter()
        .map(|p| {
            let meta = std::fs::symlink_metadata(p).expect("meta");
            let what = if meta.is_symlink() {
                format!("-> {}", std::fs::read_link(p).expect("link").display())
            } else if meta.is_dir() {
                "dir".to_string()
            } else {
                sums[p].clone()
            };
            let rel = p.strip_prefix(dir).expect("inside").display().to_string();
            (rel, format!("{:o} {what}", meta.mode() & 0o7777))
        })
        .collect()
}

/// Fails on an `@NAME@` left unfilled by install.sh's rendering.
fn assert_no_placeholder(what: &str, rendered: &str) {
    let parts: Vec<&str> = rendered.split('@').collect();
    for piece in parts.iter().skip(1).take(parts.len().saturating_sub(2)) {
        let is_name =
            !piece.is_empty() && piece.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
        assert!(!is_name, "{what}: @{piece}@ was left in:\n{rendered}");
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The uid this test runs as (what --root leaves files owned by; root in CI).
fn my_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("Uid line")
}

/// systemd's own unit folder (the targets the service units order themselves after).
fn system_units() -> Option<&'static Path> {
    ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .iter()
        .map(Path::new)
        .find(|p| p.join("multi-user.target").exists())
}

/// systemd-analyze and a tree that install.sh has installed into, plus systemd's own units,
/// so `systemd-analyze --root` resolves everything. Without the Debian package `systemd` the
/// test is skipped (failed under CI) and this is `None`.
fn installed_tree_with_systemd(test: &str) -> Option<(PathBuf, TempDir)> {
    let install = "apt-get install systemd, or bash ci/proxy-deps.sh";
    let analyze = programs_or_skip(test, &["systemd-analyze"], install)?.remove(0);
    let Some(system_units) = system_units() else {
        skip_unless_ci(test, "no systemd unit folder (multi-user.target)", install);
        return None;
    };
    let dir = TempDir::new();
    install_ok(&dir.0, &[]);
    let dest = dir.0.join("usr/lib/systemd");
    std::fs::create_dir_all(&dest).expect("mkdir");
    let out = Command::new("cp")
        .arg("-a")
        .arg(system_units)
        .arg(&dest)
        .output()
        .expect("cp");
    assert!(out.status.success(), "{}", text(&out));
    Some((analyze, dir))
}

/// `systemd-analyze verify --root=TREE UNIT`: exit code and everything it said. It exits 0
/// for unknown keys and bad values, so the callers also require silence.
fn verify(analyze: &Path, tree: &Path, unit: &str) -> (bool, String) {
    let out = Command::new(analyze)
        .arg("verify")
        .arg(format!("--root={}", tree.display()))
        .arg(format!("/etc/systemd/system/{unit}"))
        .output()
        .expect("systemd-analyze verify");
    (out.status.success(), text(&out))
}

#[test]
fn install_sh_is_valid_bash_and_explains_itself() {
    for script in ["install.sh", "deploy/wealthcoach-admin"] {
        let out = Command::new("bash")
            .arg("-n")
            .arg(repo(script))
            .output()
            .expect("bash -n");
        assert!(out.status.success(), "{script}: {}", text(&out));
    }
    let help = Command::new("bash")
        .arg(repo("install.sh"))
        .arg("--help")
        .output()
        .expect("--help");
    assert!(help.status.success(), "{}", text(&help));
    let said = text(&help);
    for option in [
        "--binary",
        "--domain",
        "--proxy",
        "--port",
        "--ws-port",
        "--no-start",
        "--root",
        "--uninstall",
    ] {
        assert!(said.contains(option), "--help does not mention {option}");
    }
    let bad = Command::new("bash")
        .arg(repo("install.sh"))
        .arg("--frobnicate")
        .output()
        .expect("bad option");
    assert!(!bad.status.success());
    assert!(text(&bad).contains("unknown option --frobnicate"));

    let admin = Command::new("bash")
        .arg(repo("deploy/wealthcoach-admin"))
        .arg("--help")
        .output()
        .expect("admin --help");
    assert!(admin.status.success(), "{}", text(&admin));
    assert!(text(&admin).contains("restore"));
}

#[test]
fn bad_options_are_refused_before_anything_is_written() {
    let dir = TempDir::new();
    let tree = dir.0.join("tree");
    for (args, says) in [
        (&["--port", "80000"][..], "--port: not a port number"),
        (
            &["--proxy", "apache"][..],
            "--proxy: expected nginx, caddy or none",
        ),
        (&["--domain", "x;rm -rf /"][..], "--domain: not a host name"),
        (
            &["--tls-cert", "relative.pem"][..],
            "TLS paths must be absolute",
        ),
    ] {
        let out = install(&tree, args);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
    }
    assert!(!tree.join("usr").exists(), "something was installed");
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let Some((analyze, tree)) = installed_tree_with_systemd("deploy verify") else {
        return;
    };
    for unit in UNITS {
        let (ok, said) = verify(&analyze, &tree.0, unit);
        assert!(ok && said.trim().is_empty(), "{unit}:\n{said}");
    }

    // The same check catches a typo, a bad value and a missing binary.
    let units = tree.0.join("etc/systemd/system");
    let broken = std::fs::read_to_string(units.join("wealthcoach.service"))
        .expect("unit")
        .replace(
            "ProtectSystem=strict",
            "ProtectSystem=sideways\nProtectSytem=strict",
        )
        .replace(
            "/usr/local/bin/wealthcoach",
            "/usr/local/bin/wealthcoach-gone",
        );
    std::fs::write(units.join("wealthcoach-broken.service"), broken).expect("write");
    let (ok, said) = verify(&analyze, &tree.0, "wealthcoach-broken.service");
    assert!(!ok, "a missing ExecStart binary must fail: {said}");
    assert!(said.contains("ProtectSytem"), "{said}");
    assert!(said.contains("sideways"), "{said}");
}

#[test]
fn services_are_sandboxed_by_systemd_analyze_security() {
    let Some((analyze, tree)) = installed_tree_with_systemd("deploy security") else {
        return;
    };
    for unit in ["wealthcoach.service", "wealthcoach-backup.service"] {
        let out = Command::new(&analyze)
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(format!("--root={}", tree.0.display()))
            .arg(format!("/etc/systemd/system/{unit}"))
            .output()
            .expect("systemd-analyze security");
        let said = text(&out);
        let exposure: f64 = said
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|rest| rest.split(": ").nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level in:\n{said}"));
        println!("{unit}: systemd-analyze security exposure {exposure}");
        assert!(exposure <= 2.0, "{unit}: exposure {exposure} > 2.0\n{said}");
    }
}

/// `Key=value` lines of a unit file (repeated keys kept in order).
fn unit_lines(unit: &str) -> Vec<String> {
    std::fs::read_to_string(repo(&format!("systemd/{unit}")))
        .expect("unit file")
        .lines()
        .map(str::trim)
        .filter(|l| l.contains('=') && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn assert_has(unit: &str, lines: &[String], wanted: &[&str]) {
    for w in wanted {
        assert!(lines.iter().any(|l| l == w), "{unit} lacks `{w}`");
    }
}

const SANDBOX: &[&str] = &[
    "User=wealthcoach",
    "Group=wealthcoach",
    "EnvironmentFile=/etc/wealthcoach/env",
    "WorkingDirectory=/var/lib/wealthcoach",
    "UMask=0077",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "LockPersonality=yes",
    "MemoryDenyWriteExecute=yes",
    "ReadWritePaths=/var/lib/wealthcoach",
    "CapabilityBoundingSet=",
    "AmbientCapabilities=",
    "SystemCallFilter=@system-service",
    "SystemCallArchitectures=native",
];

#[test]
fn units_carry_the_settings_the_server_relies_on() {
    let service = unit_lines("wealthcoach.service");
    assert_has("wealthcoach.service", &service, SANDBOX);
    assert_has(
        "wealthcoach.service",
        &service,
        &[
            // The binary sends READY=1 once both listeners accept (src/ops/systemd.rs).
            "Type=notify",
            "NotifyAccess=main",
            "ExecStart=/usr/local/bin/wealthcoach serve",
            // Exit 70 from the accept-loop watchdog must bring it back.
            "Restart=on-failure",
            "LimitNOFILE=65536",
            "MemoryMax=1G",
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
            "WantedBy=multi-user.target",
        ],
    );
    let stop: u64 = service
        .iter()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim_end_matches('s').parse().ok())
        .expect("TimeoutStopSec");
    assert!(
        stop > 10,
        "TimeoutStopSec must exceed SHUTDOWN_TIMEOUT_SECONDS (10)"
    );

    let backup = unit_lines("wealthcoach-backup.service");
    assert_has("wealthcoach-backup.service", &backup, SANDBOX);
    assert_has(
        "wealthcoach-backup.service",
        &backup,
        &[
            "Type=oneshot",
            "ExecStart=/usr/local/bin/wealthcoach backup-rotate /var/lib/wealthcoach/backups",
        ],
    );

    let timer = unit_lines("wealthcoach-backup.timer");
    assert_has(
        "wealthcoach-backup.timer",
        &timer,
        &[
            "OnCalendar=daily",
            "Persistent=true",
            "WantedBy=timers.target",
        ],
    );
    assert!(timer.iter().any(|l| l.starts_with("RandomizedDelaySec=")));
}

#[test]
fn install_into_a_tree_then_again_changes_nothing() {
    let dir = TempDir::new();
    let tree = &dir.0;
    let first = install_ok(tree, &["--port", "8100", "--ws-port", "8101"]);
    println!("{first}");
    // Fresh settings still choose SMS_PROVIDER=console, which production refuses: nothing
    // is migrated or started until the operator picks a provider.
    assert!(first.contains("NOT STARTED"), "{first}");
    assert!(first.contains("SMS_PROVIDER"), "{first}");

    for (path, want) in [
        ("usr/local/bin/wealthcoach", 0o755),
        ("usr/local/sbin/wealthcoach-admin", 0o755),
        ("usr/local/share/doc/wealthcoach/README.md", 0o644),
        ("etc/wealthcoach", 0o750),
        ("etc/wealthcoach/env", 0o600),
        ("var/lib/wealthcoach", 0o750),
        ("var/lib/wealthcoach/backups", 0o750),
        ("etc/systemd/system/wealthcoach.service", 0o644),
        ("etc/systemd/system/wealthcoach-backup.service", 0o644),
        ("etc/systemd/system/wealthcoach-backup.timer", 0o644),
        ("etc/nginx/sites-available/wealthcoach.conf", 0o644),
    ] {
        assert_eq!(mode(&tree.join(path)), want, "mode of {path}");
    }
    let env_path = tree.join("etc/wealthcoach/env");
    assert_eq!(
        std::fs::metadata(&env_path).expect("env").uid(),
        my_uid(),
        "the env file belongs to whoever ran install.sh (root on a VM)"
    );
    let env = read_env(&env_path);
    let secret = env["JWT_SECRET_KEY"].clone();
    // What production accepts: at least 32 characters, at least 16 distinct.
    assert!(secret.len() >= 48, "{secret}");
    assert!(
        secret.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{secret}"
    );
    let distinct: std::collections::HashSet<u8> = secret.bytes().collect();
    assert!(distinct.len() >= 16, "{secret}");
    assert_eq!(env["PORT"], "8100");
    assert_eq!(env["WS_PORT"], "8101");
    assert_eq!(env["HOST"], "127.0.0.1");
    assert_eq!(env["TRUSTED_PROXIES"], "127.0.0.1");
    assert_eq!(env["ENVIRONMENT"], "production");
    assert_no_placeholder("env", &std::fs::read_to_string(&env_path).expect("env"));

    // The units are enabled the offline way (systemctl --root) where systemctl exists.
    if Path::new("/usr/bin/systemctl").exists() || Path::new("/bin/systemctl").exists() {
        for link in [
            "etc/systemd/system/multi-user.target.wants/wealthcoach.service",
            "etc/systemd/system/timers.target.wants/wealthcoach-backup.timer",
        ] {
            assert!(tree.join(link).is_symlink(), "{link} missing:\n{first}");
        }
    }
    // No certificate in the tree: the nginx site is installed but not enabled.
    assert!(first.contains("NOT ENABLED"), "{first}");
    assert!(
        !tree
            .join("etc/nginx/sites-enabled/wealthcoach.conf")
            .exists()
    );

    let before = snapshot(tree);
    let second = install_ok(tree, &["--port", "8100", "--ws-port", "8101"]);
    assert_eq!(
        snapshot(tree),
        before,
        "the second run changed files:\n{second}"
    );
    assert!(second.contains("kept: /etc/wealthcoach/env"), "{second}");
    assert!(!second.contains("installed:"), "{second}");

    // The operator picks an SMS provider and runs it again: now it migrates.
    configure_sms(tree);
    let third = install_ok(tree, &[]);
    assert!(third.contains("configuration ok"), "{third}");
    assert!(third.contains("is up to date"), "{third}");
    let db = tree.join("var/lib/wealthcoach/wealthcoach.db");
    assert_eq!(mode(&db), 0o600, "the database is private to the service");
    assert_eq!(read_env(&env_path)["JWT_SECRET_KEY"], secret);

    let before = snapshot(tree);
    let fourth = install_ok(tree, &[]);
    assert_eq!(
        snapshot(tree),
        before,
        "a run after the migration changed files:\n{fourth}"
    );

    // A port that disagrees with the settings file is an error, not a silent change.
    let clash = install(tree, &["--port", "9000"]);
    assert!(!clash.status.success());
    assert!(text(&clash).contains("says PORT=8100"), "{}", text(&clash));
    assert_eq!(snapshot(tree), before, "a refused run changed files");
}

#[test]
fn uninstall_keeps_the_data_and_the_secret() {
    let dir = TempDir::new();
    let tree = &dir.0;
    install_ok(tree, &[]);
    configure_sms(tree);
    install_ok(tree, &[]);
    let env_path = tree.join("etc/wealthcoach/env");
    let env_before = std::fs::read(&env_path).expect("env");
    let db = tree.join("var/lib/wealthcoach/wealthcoach.db");
    let db_before = std::fs::read(&db).expect("db");

    let said = uninstall(tree);
    for gone in [
        "usr/local/bin/wealthcoach",
        "usr/local/sbin/wealthcoach-admin",
        "etc/systemd/system/wealthcoach.service",
        "etc/systemd/system/wealthcoach-backup.service",
        "etc/systemd/system/wealthcoach-backup.timer",
        "etc/systemd/system/multi-user.target.wants/wealthcoach.service",
        "etc/nginx/sites-available/wealthcoach.conf",
    ] {
        assert!(
            !tree.join(gone).exists(),
            "{gone} survived --uninstall:\n{said}"
        );
    }
    assert_eq!(std::fs::read(&env_path).expect("env kept"), env_before);
    assert_eq!(std::fs::read(&db).expect("db kept"), db_before);
    assert!(tree.join("var/lib/wealthcoach/backups").is_dir());

    // Installing again finds the old settings and keeps its secret.
    let again = install_ok(tree, &[]);
    assert!(again.contains("kept: /etc/wealthcoach/env"), "{again}");
    assert_eq!(std::fs::read(&env_path).expect("env"), env_before);
}

#[test]
fn the_settings_file_and_the_proxies_agree_with_the_server() {
    let dir = TempDir::new();
    let tree = &dir.0;
    install_ok(tree, &["--port", "8200", "--ws-port", "8201"]);
    let mut env = read_env(&tree.join("etc/wealthcoach/env"));

    // As written, the server refuses it for one reason only: no SMS provider chosen yet.
    let errors = wealthcoach::Config::from_map(&env).expect_err("console SMS in production");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("SMS_PROVIDER"), "{errors:?}");
    env.insert("SMS_PROVIDER".into(), "webhook".into());
    env.insert("SMS_WEBHOOK_URL".into(), "https://sms.example/send".into());
    let config = wealthcoach::Config::from_map(&env).expect("valid once SMS is chosen");
    assert!(config.is_production());
    assert_eq!(
        config.http.trusted_proxies,
        vec![IpAddr::from([127, 0, 0, 1])]
    );
    assert_eq!(config.host, IpAddr::from([127, 0, 0, 1]));
    assert_eq!((config.port, config.ws_port), (8200, 8201));

    // nginx caps bodies at exactly MAX_BODY_BYTES and reaches the server's two ports.
    let site = std::fs::read_to_string(tree.join("etc/nginx/sites-available/wealthcoach.conf"))
        .expect("site");
    assert_eq!(config.http.max_body_bytes, 1024 * 1024);
    assert!(site.contains("client_max_body_size 1m;"), "{site}");
    assert!(site.contains("server 127.0.0.1:8200;"));
    assert!(site.contains("server 127.0.0.1:8201;"));
    assert!(site.contains("server_name api.example.com;"));
    assert!(site.contains("/etc/letsencrypt/live/api.example.com/fullchain.pem"));
    assert_no_placeholder("nginx site", &site);
    // Every proxied location replaces X-Forwarded-For with the address nginx saw.
    let passes = site.matches("proxy_pass ").count();
    assert_eq!(
        site.matches("proxy_set_header X-Forwarded-For $remote_addr;")
            .count(),
        passes,
        "a location without its own X-Forwarded-For"
    );
    assert!(!site.contains("proxy_add_x_forwarded_for"));

    // Caddy, rendered the same way.
    let caddy_tree = dir.0.join("caddy");
    install_ok(
        &caddy_tree,
        &["--proxy", "caddy", "--port", "8200", "--ws-port", "8201"],
    );
    let caddyfile =
        std::fs::read_to_string(caddy_tree.join("etc/caddy/Caddyfile")).expect("Caddyfile");
    assert!(
        caddyfile.contains("https://api.example.com {"),
        "{caddyfile}"
    );
    assert!(
        caddyfile.contains("http://api.example.com {"),
        "{caddyfile}"
    );
    assert!(caddyfile.contains("reverse_proxy 127.0.0.1:8200"));
    assert!(caddyfile.contains("reverse_proxy 127.0.0.1:8201"));
    assert!(caddyfile.contains("max_size 1MiB"));
    assert_no_placeholder("Caddyfile", &caddyfile);
    uninstall(&caddy_tree);
    assert!(!caddy_tree.join("etc/caddy/Caddyfile").exists());
}
