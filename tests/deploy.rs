//! install.sh, the systemd units and the proxy templates, checked without a real system:
//! `install.sh --root` into a temporary tree, then `systemd-analyze verify --root` and
//! `systemd-analyze security --offline` on what it installed (no systemd as PID 1 needed).
//!
//! Needs bash and coreutils, and systemd-analyze (Debian package `systemd`) for the unit checks;
//! without it those two say SKIPPED, except under CI (`CI=true`), where they fail.
//!
//! Litestream is the outside world here: install.sh gets a fake `--litestream` script that only
//! answers `version`, and deploy/replica-restore a fake that records how it was called. The real
//! binary is used where the replication venv exists (see `real_litestream`).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{TempDir, programs_or_skip, skip_unless_ci};

const BIN: &str = env!("CARGO_BIN_EXE_wealthcoach");
const UNITS: [&str; 6] = [
    "wealthcoach.service",
    "wealthcoach-backup.service",
    "wealthcoach-backup.timer",
    "wealthcoach-replicate.service",
    "wealthcoach-drill.service",
    "wealthcoach-drill.timer",
];
/// The services `systemd-analyze security` must find sandboxed.
const SERVICES: [&str; 4] = [
    "wealthcoach.service",
    "wealthcoach-backup.service",
    "wealthcoach-replicate.service",
    "wealthcoach-drill.service",
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

/// An executable shell script at `path` (its folders created).
fn write_script(path: &Path, body: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, format!("#!/bin/sh\n{body}")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.to_path_buf()
}

/// A stand-in for the Litestream binary that answers `litestream version` with `says`.
fn fake_litestream(path: &Path, says: &str) -> PathBuf {
    write_script(
        path,
        &format!("[ \"$1\" = version ] && {{ echo '{says}'; exit 0; }}\nexit 64\n"),
    )
}

/// `install.sh --root TREE --binary <the built server> --litestream <fake 0.5.17> --no-start
/// --domain … ARGS` (a later `--litestream` in ARGS wins). The fake lives in the tree, beside
/// what is installed, so it goes away with it.
fn install(tree: &Path, args: &[&str]) -> Output {
    let litestream = fake_litestream(&tree.join("given/litestream"), "0.5.17");
    Command::new("bash")
        .arg(repo("install.sh"))
        .arg("--root")
        .arg(tree)
        .args(["--binary", BIN, "--no-start", "--domain", "api.example.com"])
        .arg("--litestream")
        .arg(&litestream)
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
    for script in [
        "install.sh",
        "deploy/wealthcoach-admin",
        "deploy/replica-restore",
    ] {
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
        "--litestream",
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
    let old = fake_litestream(&dir.0.join("old/litestream"), "litestream v0.5.16");
    let longer = fake_litestream(&dir.0.join("longer/litestream"), "0.5.170");
    let silent = fake_litestream(&dir.0.join("silent/litestream"), "");
    let old = old.to_str().expect("utf-8");
    let longer = longer.to_str().expect("utf-8");
    let silent = silent.to_str().expect("utf-8");
    for (args, says) in [
        (
            &["--litestream", "/nonexistent/litestream"][..],
            "--litestream: not an executable file: /nonexistent/litestream",
        ),
        (
            &["--litestream", old][..],
            "version says '0.5.16', this install needs 0.5.17",
        ),
        (
            &["--litestream", longer][..],
            "version says '0.5.170', this install needs 0.5.17",
        ),
        (
            &["--litestream", silent][..],
            "version says 'nothing', this install needs 0.5.17",
        ),
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
    for unit in SERVICES {
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

    for name in ["wealthcoach-backup.timer", "wealthcoach-drill.timer"] {
        let timer = unit_lines(name);
        assert_has(
            name,
            &timer,
            &[
                "OnCalendar=daily",
                "Persistent=true",
                "WantedBy=timers.target",
            ],
        );
        assert!(timer.iter().any(|l| l.starts_with("RandomizedDelaySec=")));
    }
}

/// The check that skips a replication unit (condition failed, not unit failed) while
/// REPLICA_BUCKET is empty.
const WHEN_REPLICATING: &str =
    "ExecCondition=/usr/local/lib/wealthcoach/replica-restore --check-enabled";

#[test]
fn replication_units_start_first_stop_last_and_never_hold_the_server() {
    let replicate = unit_lines("wealthcoach-replicate.service");
    assert_has("wealthcoach-replicate.service", &replicate, SANDBOX);
    assert_has(
        "wealthcoach-replicate.service",
        &replicate,
        &[
            WHEN_REPLICATING,
            "ExecStart=/usr/local/lib/wealthcoach/litestream/bin/litestream replicate -config /etc/wealthcoach/litestream.yml",
            "Restart=always",
            "TimeoutStopSec=45s",
            // Starts before the server; stops after it, uploading its last writes.
            "Before=wealthcoach.service",
            "PartOf=wealthcoach.service",
            // S3 over TCP, and the control socket.
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        ],
    );
    assert!(
        !replicate.iter().any(|l| l.starts_with("WantedBy=")),
        "the server pulls it in; it must not start on its own"
    );

    let service = unit_lines("wealthcoach.service");
    assert_has(
        "wealthcoach.service",
        &service,
        &[
            "ExecStartPre=/usr/local/lib/wealthcoach/replica-restore",
            "Wants=network-online.target wealthcoach-replicate.service",
        ],
    );
    // The API never depends on Litestream: no dependency that stops or fails it with it.
    for strong in ["Requires=", "Requisite=", "BindsTo=", "PartOf=", "Upholds="] {
        assert!(
            !service
                .iter()
                .any(|l| l.starts_with(strong) && l.contains("replicate")),
            "wealthcoach.service: {strong} on the replicate unit"
        );
    }

    let drill = unit_lines("wealthcoach-drill.service");
    assert_has("wealthcoach-drill.service", &drill, SANDBOX);
    assert_has(
        "wealthcoach-drill.service",
        &drill,
        &[
            WHEN_REPLICATING,
            "Type=oneshot",
            "ExecStart=/usr/local/bin/wealthcoach replica-drill",
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        ],
    );
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
        ("etc/systemd/system/wealthcoach-replicate.service", 0o644),
        ("etc/systemd/system/wealthcoach-drill.service", 0o644),
        ("etc/systemd/system/wealthcoach-drill.timer", 0o644),
        ("etc/wealthcoach/litestream.yml", 0o644),
        ("usr/local/lib/wealthcoach", 0o755),
        ("usr/local/lib/wealthcoach/litestream/bin/litestream", 0o755),
        ("usr/local/lib/wealthcoach/replica-restore", 0o755),
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
            "etc/systemd/system/timers.target.wants/wealthcoach-drill.timer",
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
        "etc/systemd/system/wealthcoach-replicate.service",
        "etc/systemd/system/wealthcoach-drill.service",
        "etc/systemd/system/wealthcoach-drill.timer",
        "etc/systemd/system/multi-user.target.wants/wealthcoach.service",
        "etc/systemd/system/timers.target.wants/wealthcoach-drill.timer",
        "etc/wealthcoach/litestream.yml",
        "usr/local/lib/wealthcoach",
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

#[test]
fn install_puts_litestream_its_settings_and_the_restore_step_in_place() {
    let dir = TempDir::new();
    let tree = &dir.0;
    let said = install_ok(tree, &[]);
    let bin = "/usr/local/lib/wealthcoach/litestream/bin/litestream";
    assert!(
        said.contains(&format!("checked: {bin} version 0.5.17")),
        "{said}"
    );
    assert!(said.contains("replication is off"), "{said}");
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let installed = tree.join(&bin[1..]);
    assert_eq!(read(installed.clone()), read(tree.join("given/litestream")));
    assert_eq!(
        read(tree.join("usr/local/lib/wealthcoach/replica-restore")),
        read(repo("deploy/replica-restore"))
    );

    // Litestream's configuration: as shipped, no secret in it, every ${VAR} from the env file.
    let yml = String::from_utf8(read(tree.join("etc/wealthcoach/litestream.yml"))).expect("utf-8");
    assert_eq!(
        yml,
        std::fs::read_to_string(repo("deploy/litestream.yml")).expect("yml")
    );
    for fixed in [
        "addr: ${LITESTREAM_METRICS_ADDR}",
        "path: ${LITESTREAM_SOCKET}",
        "permissions: 0600",
        "type: json",
        "interval: 6h",
        "retention: 168h",
        "- path: ${LITESTREAM_DB}",
        "monitor-interval: 250ms",
        "type: s3",
        "bucket: ${REPLICA_BUCKET}",
        "path: ${REPLICA_PATH}",
        "endpoint: ${REPLICA_ENDPOINT}",
        "region: ${REPLICA_REGION}",
        "sync-interval: 250ms",
    ] {
        assert!(yml.contains(fixed), "litestream.yml lacks `{fixed}`");
    }
    assert!(!yml.contains("access-key-id") && !yml.contains("secret-access-key"));
    let env = read_env(&tree.join("etc/wealthcoach/env"));
    let settings = yml.lines().filter(|l| !l.trim_start().starts_with('#'));
    for var in settings.flat_map(|l| l.split("${").skip(1)) {
        let name = var.split('}').next().expect("name");
        assert!(env.contains_key(name), "env file lacks {name}");
    }
    assert_eq!(env["REPLICA_BUCKET"], "", "replication starts off");
    assert_eq!(env["LITESTREAM_BIN"], bin);
    assert_eq!(env["LITESTREAM_CONFIG"], "/etc/wealthcoach/litestream.yml");
    assert_eq!(env["LITESTREAM_DB"], env["DATABASE_URL"]);
    assert_eq!(
        env["LITESTREAM_SOCKET"],
        "/var/lib/wealthcoach/litestream.sock"
    );
    assert_eq!(env["LITESTREAM_METRICS_ADDR"], "127.0.0.1:9091");
    // The units' defaults, for a settings file written before replication, say the same.
    for unit in [
        "wealthcoach.service",
        "wealthcoach-replicate.service",
        "wealthcoach-drill.service",
    ] {
        let lines = unit_lines(unit);
        let defaults = lines
            .iter()
            .find_map(|l| l.strip_prefix("Environment="))
            .unwrap_or_else(|| panic!("{unit}: no Environment="));
        for pair in defaults.split_whitespace() {
            let (key, value) = pair.split_once('=').expect("KEY=value");
            assert_eq!(env[key], value, "{unit}: {key}");
        }
    }

    // A new build of the same version replaces it; another version is refused and changes nothing.
    let newer = fake_litestream(&dir.0.join("newer/litestream"), "litestream v0.5.17");
    let said = install_ok(tree, &["--litestream", newer.to_str().expect("utf-8")]);
    assert!(said.contains(&format!("installed: {bin}")), "{said}");
    assert_eq!(read(installed.clone()), read(newer));
    let old = fake_litestream(&dir.0.join("old/litestream"), "0.5.16");
    let before = snapshot(tree);
    let out = install(tree, &["--litestream", old.to_str().expect("utf-8")]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("version says '0.5.16', this install needs 0.5.17"),
        "{}",
        text(&out)
    );
    assert_eq!(snapshot(tree), before, "a refused Litestream changed files");
}

/// A stand-in for Litestream's `restore`: appends its arguments and the variables the config
/// expands to `<dir>/calls`, then fails with FAKE_EXIT, or finds no replica (FAKE_EMPTY), or
/// writes the `-o` file.
fn fake_restore_litestream(dir: &Path) -> PathBuf {
    write_script(
        &dir.join("bin/litestream"),
        r#"log=$(dirname "$0")/calls
{ for a in "$@"; do echo "$a"; done
  echo "REPLICA_PATH=$REPLICA_PATH LITESTREAM_DB=$LITESTREAM_DB"; } >>"$log"
if [ -n "$FAKE_EXIT" ]; then echo "fake: no route to the bucket" >&2; exit "$FAKE_EXIT"; fi
[ -n "$FAKE_EMPTY" ] && { echo "no matching backups found"; exit 0; }
out=""
while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done
echo restored >"$out"
"#,
    )
}

/// Runs deploy/replica-restore with only PATH and `vars` in its environment: its status, what it
/// said, and the fake's call log (None when Litestream was not called).
fn replica_restore(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> (Output, Option<String>) {
    let litestream = fake_restore_litestream(dir);
    let calls = dir.join("bin/calls");
    let _ = std::fs::remove_file(&calls);
    let out = Command::new("bash")
        .arg(repo("deploy/replica-restore"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LITESTREAM_BIN", &litestream)
        .envs(vars.iter().copied())
        .output()
        .expect("run replica-restore");
    (out, std::fs::read_to_string(&calls).ok())
}

/// A data folder and a readable litestream.yml (the shipped one) for replica-restore.
fn restore_scene() -> (TempDir, String, String) {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.0.join("data")).expect("mkdir");
    let db = dir.0.join("data/wealthcoach.db").display().to_string();
    let config = repo("deploy/litestream.yml").display().to_string();
    (dir, db, config)
}

#[test]
fn replica_restore_leaves_an_existing_database_and_an_unreplicated_vm_alone() {
    let (dir, db, config) = restore_scene();
    // Replication off: nothing is called, nothing is made.
    for bucket in [None, Some("")] {
        let mut vars = vec![
            ("DATABASE_URL", db.as_str()),
            ("LITESTREAM_CONFIG", &config),
        ];
        vars.extend(bucket.map(|b| ("REPLICA_BUCKET", b)));
        let (out, calls) = replica_restore(&dir.0, &[], &vars);
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("replication is off"), "{}", text(&out));
        assert_eq!(calls, None, "Litestream was called with replication off");
        assert!(!Path::new(&db).exists());
    }
    // The database exists: it is never touched, and S3 is not asked (a restart with S3 down).
    std::fs::write(&db, b"live data").expect("db");
    let (out, calls) = replica_restore(
        &dir.0,
        &[],
        &[
            ("DATABASE_URL", &db),
            ("LITESTREAM_CONFIG", &config),
            ("REPLICA_BUCKET", "backups"),
            ("REPLICA_PATH", "wealthcoach/vm1"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("exists: nothing to restore"));
    assert_eq!(
        calls, None,
        "Litestream was called over an existing database"
    );
    assert_eq!(std::fs::read(&db).expect("db"), b"live data");

    // The ExecCondition of the replication units: 0 when on, 1 (skipped) when off.
    let (on, calls) = replica_restore(
        &dir.0,
        &["--check-enabled"],
        &[("REPLICA_BUCKET", "backups")],
    );
    assert_eq!(on.status.code(), Some(0), "{}", text(&on));
    assert_eq!(calls, None);
    let (off, _) = replica_restore(&dir.0, &["--check-enabled"], &[("REPLICA_BUCKET", "")]);
    assert_eq!(off.status.code(), Some(1), "{}", text(&off));
    assert!(text(&off).contains("REPLICA_BUCKET is empty"));
}

#[test]
fn replica_restore_brings_back_a_missing_database_from_the_old_vms_path() {
    let (dir, db, config) = restore_scene();
    let base = [
        ("LITESTREAM_CONFIG", config.as_str()),
        ("REPLICA_BUCKET", "backups"),
        ("REPLICA_PATH", "wealthcoach/vm2"),
    ];
    // A new VM: it writes to vm2 and restores from vm1. The URL form names the same file.
    let url = format!("sqlite://{db}");
    let mut vars = base.to_vec();
    vars.extend([
        ("DATABASE_URL", url.as_str()),
        ("REPLICA_RESTORE_FROM", "wealthcoach/vm1"),
    ]);
    let (out, calls) = replica_restore(&dir.0, &[], &vars);
    assert!(out.status.success(), "{}", text(&out));
    let expected: Vec<String> = [
        "restore",
        "-config",
        &config,
        "-if-db-not-exists",
        "-if-replica-exists",
        "-integrity-check",
        "full",
        "-o",
        &db,
        &db,
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("REPLICA_PATH=wealthcoach/vm1 LITESTREAM_DB={db}")])
    .collect();
    let calls = calls.expect("Litestream was not called");
    assert_eq!(calls.lines().collect::<Vec<_>>(), expected);
    assert_eq!(std::fs::read(&db).expect("restored"), b"restored\n");
    assert!(text(&out).contains("restored"), "{}", text(&out));
    // The server renews the sync epoch of a restored database at its start (replication_core).
    assert!(
        Path::new(&format!("{db}.replica-restored")).exists(),
        "the marker beside the restored database"
    );

    // Without REPLICA_RESTORE_FROM the VM restores from its own path; LITESTREAM_DB, when set,
    // is the name the config knows the database by.
    std::fs::remove_file(&db).expect("rm");
    let mut vars = base.to_vec();
    vars.extend([
        ("DATABASE_URL", db.as_str()),
        ("REPLICA_RESTORE_FROM", ""),
        ("LITESTREAM_DB", "/var/lib/wealthcoach/wealthcoach.db"),
    ]);
    let (out, calls) = replica_restore(&dir.0, &[], &vars);
    assert!(out.status.success(), "{}", text(&out));
    let calls = calls.expect("called");
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(
        lines[8..10],
        [db.as_str(), "/var/lib/wealthcoach/wealthcoach.db"]
    );
    assert_eq!(
        lines[10],
        "REPLICA_PATH=wealthcoach/vm2 LITESTREAM_DB=/var/lib/wealthcoach/wealthcoach.db"
    );

    // An empty replica (a first start with replication on): no file, the server makes one.
    std::fs::remove_file(&db).expect("rm");
    let mut vars = base.to_vec();
    vars.extend([("DATABASE_URL", db.as_str()), ("FAKE_EMPTY", "1")]);
    let (out, calls) = replica_restore(&dir.0, &[], &vars);
    assert!(out.status.success(), "{}", text(&out));
    assert!(calls.is_some());
    assert!(
        text(&out).contains("holds no database yet"),
        "{}",
        text(&out)
    );
    assert!(!Path::new(&db).exists());
}

#[test]
fn replica_restore_fails_the_start_when_the_replica_cannot_be_read() {
    let (dir, db, config) = restore_scene();
    let base = [
        ("DATABASE_URL", db.as_str()),
        ("LITESTREAM_CONFIG", config.as_str()),
        ("REPLICA_BUCKET", "backups"),
        ("REPLICA_PATH", "wealthcoach/vm2"),
    ];
    // Litestream fails (S3 unreachable, bad credentials, a copy failing its integrity check).
    let mut vars = base.to_vec();
    vars.push(("FAKE_EXIT", "1"));
    let (out, calls) = replica_restore(&dir.0, &[], &vars);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(calls.is_some(), "Litestream was not called");
    assert!(
        text(&out).contains("FAILED (litestream exit 1)"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("fake: no route to the bucket"));
    assert!(!Path::new(&db).exists(), "an empty database was left");

    // Settings that cannot work fail before Litestream is asked.
    for (key, value, says) in [
        (
            "LITESTREAM_CONFIG",
            "/nonexistent/litestream.yml",
            "cannot read the Litestream configuration",
        ),
        (
            "REPLICA_PATH",
            "",
            "REPLICA_PATH and REPLICA_RESTORE_FROM are empty",
        ),
        (
            "DATABASE_URL",
            "postgres://db/x",
            "only SQLite is supported",
        ),
    ] {
        let mut vars: Vec<(&str, &str)> = base.iter().copied().filter(|(k, _)| *k != key).collect();
        vars.push((key, value));
        let (out, calls) = replica_restore(&dir.0, &[], &vars);
        assert_eq!(out.status.code(), Some(1), "{key}: {}", text(&out));
        assert!(text(&out).contains(says), "{key}: {}", text(&out));
        assert_eq!(calls, None, "{key}: Litestream was called");
    }
}

/// The real Litestream 0.5.17 from the replication venv (ci/replication-deps.sh), if present.
fn real_litestream() -> Option<PathBuf> {
    let venv = std::env::var_os("WEALTHCOACH_REPLICATION_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/wealthcoach/replication-venv"))
        })?;
    let bin = venv.join("bin/litestream");
    bin.exists().then_some(bin)
}

#[test]
fn the_real_litestream_is_accepted_and_reads_the_shipped_config() {
    let Some(real) = real_litestream() else {
        eprintln!(
            "SKIPPED: deploy real litestream: no replication venv (bash ci/replication-deps.sh)"
        );
        return;
    };
    let dir = TempDir::new();
    let tree = &dir.0;
    let said = install_ok(tree, &["--litestream", real.to_str().expect("utf-8")]);
    assert!(said.contains("version 0.5.17"), "{said}");

    let installed = tree.join("usr/local/lib/wealthcoach/litestream/bin/litestream");
    // The flags deploy/replica-restore passes are this version's.
    let help = Command::new(&installed)
        .args(["restore", "-h"])
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .expect("restore -h");
    let help = text(&help);
    for flag in [
        "-config PATH",
        "-if-db-not-exists",
        "-if-replica-exists",
        "-integrity-check",
        "-o PATH",
    ] {
        assert!(help.contains(flag), "restore -h lacks {flag}:\n{help}");
    }
    // The installed config, expanded from the installed settings, names the database and an
    // S3 replica.
    let mut env = read_env(&tree.join("etc/wealthcoach/env"));
    let db = tree.join("var/lib/wealthcoach/wealthcoach.db");
    env.insert("LITESTREAM_DB".into(), db.display().to_string());
    env.insert("REPLICA_BUCKET".into(), "backups".into());
    env.insert("REPLICA_PATH".into(), "wealthcoach/vm1".into());
    let out = Command::new(&installed)
        .arg("databases")
        .arg("-config")
        .arg(tree.join("etc/wealthcoach/litestream.yml"))
        .env_clear()
        .envs(&env)
        .output()
        .expect("litestream databases");
    assert!(out.status.success(), "{}", text(&out));
    let listed = text(&out);
    assert!(listed.contains(&db.display().to_string()), "{listed}");
    assert!(listed.contains("s3"), "{listed}");
}

#[test]
fn a_new_vm_with_replication_on_is_left_without_a_database_for_the_restore() {
    let dir = TempDir::new();
    let tree = &dir.0;
    install_ok(tree, &[]);
    configure_sms(tree);
    // The runbook: the saved settings, a new REPLICA_PATH, the old one to restore from.
    let env_path = tree.join("etc/wealthcoach/env");
    let edited = std::fs::read_to_string(&env_path)
        .expect("env")
        .replace("REPLICA_BUCKET=\n", "REPLICA_BUCKET=backups\n")
        .replace("REPLICA_PATH=\n", "REPLICA_PATH=wealthcoach/vm2\n")
        .replace(
            "REPLICA_RESTORE_FROM=\n",
            "REPLICA_RESTORE_FROM=wealthcoach/vm1\n",
        )
        .replace(
            "LITESTREAM_ACCESS_KEY_ID=\n",
            "LITESTREAM_ACCESS_KEY_ID=key\n",
        )
        .replace(
            "LITESTREAM_SECRET_ACCESS_KEY=\n",
            "LITESTREAM_SECRET_ACCESS_KEY=secret\n",
        );
    std::fs::write(&env_path, edited).expect("edit env");
    assert_eq!(read_env(&env_path)["REPLICA_BUCKET"], "backups");

    // A migration now would create an empty database, and the start would skip the restore.
    let said = install_ok(tree, &[]);
    assert!(said.contains("configuration ok"), "{said}");
    assert!(said.contains("replication on: not migrating"), "{said}");
    assert!(!said.contains("replication is off"), "{said}");
    let db = tree.join("var/lib/wealthcoach/wealthcoach.db");
    assert!(
        !db.exists(),
        "install.sh created a database before the restore"
    );

    // With replication off again it migrates as before.
    let off = std::fs::read_to_string(&env_path)
        .expect("env")
        .replace("REPLICA_BUCKET=backups", "REPLICA_BUCKET=");
    std::fs::write(&env_path, off).expect("edit env");
    let said = install_ok(tree, &[]);
    assert!(said.contains("is up to date"), "{said}");
    assert!(db.exists());
}
