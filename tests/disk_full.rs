//! Disk full: the built server keeps its database on a small filesystem of its own (a 4 MiB
//! tmpfs, else an 8 MiB loop-mounted ext4 image), a filler file then takes all but a little of
//! the space, and the test writes until writes fail.
//!
//! While the disk is full: every failed write is a JSON 503 (or 507) with a `code`, never a
//! 500 and never a dropped connection; the server stays up; reads (`/api/v1/health`, the
//! balance, the listing) keep answering; the month's totals equal its listed transactions;
//! every acknowledged write is there; `PRAGMA integrity_check` is ok. Once the filler is
//! deleted, writes succeed again in the same process (the refused keyed writes retried under
//! their keys each land exactly once), a graceful stop checkpoints the WAL, and a restart on
//! the same file finds everything.
//!
//! Two more need no mount: under a steady stream of writes the WAL must not grow without
//! bound (it did: the checkpoint thread's PASSIVE checkpoints never let it restart), also
//! with every fsync slowed to 200 ms by strace (needs strace; SKIPPED without, except in CI).
//!
//! Mounting needs root (or CAP_SYS_ADMIN). Where neither mount works the test says SKIPPED
//! and passes, unless `WEALTHCOACH_REQUIRE_DISK_FULL=1`. `WEALTHCOACH_DISK_FULL_FS=ext4`
//! skips the tmpfs attempt (to exercise the loop-device path).

mod common;
mod reliability_support;

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reliability_support::*;
use serde_json::{Value, json};

/// Left free after the filler: a few commits' worth of WAL frames.
const ROOM: u64 = 64 * 1024;
/// Writes tried before giving up on ever seeing the disk full.
const MAX_WRITES: usize = 3000;
/// Writes tried after the first refusal, to see that refusals stay clean.
const WRITES_WHILE_FULL: usize = 12;
/// How long the disk stays full: the checkpoint thread runs every second.
const FULL_FOR: Duration = Duration::from_millis(2500);
/// How long a write may keep being refused after the filler is gone.
const RECOVERY_LIMIT: Duration = Duration::from_secs(20);
const YEAR: i32 = 2031;
const MONTH: u32 = 5;

/// Runs a command to completion; `Err` with its output when it fails.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .replace('\n', " ")
        ))
    }
}

/// A small filesystem mounted on `dir`, unmounted when dropped (pass or fail).
struct SmallFs {
    dir: PathBuf,
    kind: String,
}

impl SmallFs {
    /// A 4 MiB tmpfs, else an 8 MiB ext4 image on a loop device; `Err` says why neither.
    fn mount(base: &TempDir) -> Result<SmallFs, String> {
        let dir = base.path("small");
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let target = dir.to_str().expect("utf-8 temp path");
        let wanted = std::env::var("WEALTHCOACH_DISK_FULL_FS").unwrap_or_default();
        let tmpfs = if wanted == "ext4" {
            Err("not tried (WEALTHCOACH_DISK_FULL_FS=ext4)".to_string())
        } else {
            run("mount", &["-t", "tmpfs", "-o", "size=4m", "tmpfs", target])
        };
        if tmpfs.is_ok() {
            return Ok(SmallFs {
                dir,
                kind: "4 MiB tmpfs".into(),
            });
        }
        let image = base.path("small.img");
        let loop_ext4 = std::fs::File::create(&image)
            .and_then(|f| f.set_len(8 * 1024 * 1024))
            .map_err(|e| format!("create {}: {e}", image.display()))
            .and_then(|()| {
                let img = image.to_str().expect("utf-8 temp path");
                // -m 0: no blocks reserved for root, so the filler and the server see one limit.
                run("mkfs.ext4", &["-q", "-F", "-m", "0", img])?;
                run("mount", &["-o", "loop", img, target])
            });
        match loop_ext4 {
            Ok(()) => Ok(SmallFs {
                dir,
                kind: "8 MiB ext4 on a loop device".into(),
            }),
            Err(e) => Err(format!(
                "tmpfs: {}; loop-mounted ext4: {e}",
                tmpfs.unwrap_err()
            )),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let target = self.dir.to_str().unwrap_or_default().to_string();
        let unmounted = wait_until(Duration::from_secs(5), || run("umount", &[&target]).is_ok());
        if !unmounted {
            // Still busy: detach it now, the kernel frees it when the last user lets go.
            if let Err(e) = run("umount", &["-l", &target]) {
                eprintln!("could not unmount {target}: {e}");
            }
        }
    }
}

/// Fills the filesystem with zeros until it refuses more, then gives back `ROOM` bytes.
/// Returns the filler's size.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("create the filler");
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // The last partial chunk may have gone in before the refusal; be exact about the size.
    let _ = f.sync_all();
    let size = f.metadata().map(|m| m.len()).unwrap_or(written);
    let keep = size.saturating_sub(ROOM);
    f.set_len(keep).expect("shrink the filler");
    f.sync_all().expect("sync the filler");
    keep
}

/// A failed write must be a clear answer: 503 or 507, JSON, with a `code`.
fn assert_clean_refusal(r: &Reply, what: &str, log: &str) -> String {
    assert!(
        r.status == 503 || r.status == 507,
        "{what}: got {} on a full disk, want 503/507: {}\nserver log:\n{log}",
        r.status,
        r.text()
    );
    let body = r.json();
    let code = body["code"].as_str().unwrap_or_default().to_string();
    assert!(
        !code.is_empty() && body["detail"].is_string(),
        "{what}: refusal without code/detail: {body}"
    );
    code
}

/// A keyed transaction of this test.
struct Keyed {
    key: String,
    label: String,
    body: Value,
}

fn keyed(i: usize) -> Keyed {
    // Long labels fill pages quickly.
    let label = format!("disk-full {i:04} {}", "x".repeat(170));
    let body = json!({"type": if i.is_multiple_of(3) { "income" } else { "expense" }, "category": "disk",
                      "amount": format!("{}.{:02}", 1 + i % 900, i % 100), "label": label,
                      "transaction_date": format!("{YEAR}-{MONTH:02}-{:02}T{:02}:{:02}:00Z",
                                                  1 + i % 28, i / 60 % 24, i % 60)});
    Keyed {
        key: format!("disk-full-{i}"),
        label,
        body,
    }
}

/// Every acknowledged label is listed once with its id, and the totals hold; the rows by label.
fn check_month(
    addr: SocketAddr,
    token: &str,
    acked: &[(String, String)],
    when: &str,
) -> HashMap<String, Vec<String>> {
    let rows = check_invariant(addr, token, YEAR, MONTH);
    let mut by_label: HashMap<String, Vec<String>> = HashMap::new();
    for r in rows {
        by_label.entry(r.label).or_default().push(r.id);
    }
    for (label, id) in acked {
        assert_eq!(
            by_label.get(label),
            Some(&vec![id.clone()]),
            "{when}: acknowledged {label:.20} missing or doubled"
        );
    }
    by_label
}

#[test]
fn a_full_disk_refuses_writes_cleanly_and_recovers_without_a_restart() {
    disk_full_run("NORMAL");
}

#[test]
fn a_full_disk_refuses_writes_cleanly_and_recovers_without_a_restart_synchronous_full() {
    disk_full_run("FULL");
}

fn disk_full_run(sync: &str) {
    let started = Instant::now();
    let base = TempDir::new("diskfull");
    let fs = match SmallFs::mount(&base) {
        Ok(fs) => fs,
        Err(why) => {
            let required = std::env::var("WEALTHCOACH_REQUIRE_DISK_FULL").as_deref() == Ok("1");
            assert!(!required, "WEALTHCOACH_REQUIRE_DISK_FULL=1 but: {why}");
            // Straight to the stream, past the test harness's capture, so CI logs show it.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED disk_full ({sync}): cannot mount a small filesystem here: {why}"
            );
            return;
        }
    };
    println!("DB_SYNCHRONOUS={sync}: database on a {}", fs.kind);
    let db = fs.path("wc.db");
    let url = db.to_str().expect("utf-8 temp path").to_string();
    let mut vars = server_vars(&url, sync);
    vars.push(("HTTP_WORKERS", "4"));
    // The server's log lives outside the small filesystem.
    let mut server = Server::start(&base.0, &vars, "serve-1");
    let mut addr = server.addr;
    let token = register(
        addr,
        &format!("disk-full-{}@example.com", sync.to_lowercase()),
    );
    let type_id = first_type_id(addr, &token);
    let allocation = |p: i64| {
        json!({"allocation_type_id": type_id, "mode": "add", "month": MONTH, "year": YEAR,
                        "actual_amount": format!("{}.{:02}", p / 100, p % 100)})
    };
    let filler = fs.path("filler");
    let filled = fill(&filler);
    println!("filler: {filled} bytes, {ROOM} left free");

    // Write until the disk refuses, then a few more of every kind.
    let mut acked: Vec<(String, String)> = Vec::new();
    let mut to_retry: Vec<Keyed> = Vec::new();
    let mut codes: HashMap<String, usize> = HashMap::new();
    let (mut adds_acked, mut adds_refused) = (0i64, 0usize);
    let mut first_refusal: Option<(usize, Instant)> = None;
    for i in 0..MAX_WRITES {
        if let Some((at, when)) = first_refusal {
            if i - at > WRITES_WHILE_FULL && when.elapsed() >= FULL_FOR {
                break;
            }
            // Paced, so the checkpoint thread gets its turns on the full disk too.
            std::thread::sleep(Duration::from_millis(100));
        }
        let k = keyed(i);
        let what = format!("write {i}");
        let r = match post_keyed(addr, &token, &k.key, &k.body) {
            Exchange::Answered(r) => r,
            other => panic!(
                "{what}: no answer on a full disk ({other:?}); alive: {}\nlog:\n{}",
                server.alive(),
                server.log_text()
            ),
        };
        if r.status == 201 {
            acked.push((k.label.clone(), r.json()["id"].as_str().expect("id").into()));
        } else {
            *codes
                .entry(assert_clean_refusal(&r, &what, &server.log_text()))
                .or_default() += 1;
            to_retry.push(k);
            first_refusal.get_or_insert((i, Instant::now()));
        }
        if first_refusal.is_some() {
            // The allocation route takes the other write path (allocation_write).
            let r = call(addr, "POST", ACTUAL, &token, Some(&allocation(7)), &[])
                .reply("allocation add on a full disk");
            if r.status == 200 {
                adds_acked += 7;
            } else {
                *codes
                    .entry(assert_clean_refusal(
                        &r,
                        "allocation add",
                        &server.log_text(),
                    ))
                    .or_default() += 1;
                adds_refused += 1;
            }
        }
    }
    assert!(
        !to_retry.is_empty(),
        "{MAX_WRITES} writes and the disk never filled: the test proved nothing"
    );
    println!(
        "disk full after {} acknowledged writes; refusals by code: {codes:?} \
         ({} transactions, {adds_refused} allocation adds)",
        acked.len(),
        to_retry.len()
    );

    // Concurrent writers on the full disk: still only clean answers.
    let burst: Vec<(Keyed, Reply)> = std::thread::scope(|s| {
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let token = &token;
                s.spawn(move || {
                    (0..5)
                        .map(|n| {
                            let k = keyed(MAX_WRITES + t * 10 + n);
                            let r = post_keyed(addr, token, &k.key, &k.body)
                                .reply("concurrent write on a full disk");
                            (k, r)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        writers
            .into_iter()
            .flat_map(|w| w.join().expect("writer thread"))
            .collect()
    });
    for (k, r) in burst {
        if r.status == 201 {
            acked.push((k.label.clone(), r.json()["id"].as_str().expect("id").into()));
        } else {
            assert_clean_refusal(&r, "concurrent write", &server.log_text());
            to_retry.push(k);
        }
    }

    // Reads keep working and nothing is damaged.
    assert!(server.alive(), "the server died on a full disk");
    for path in ["/api/v1/health", "/health"] {
        assert_eq!(server.status(path), Some(200), "{path} on a full disk");
    }
    let b = expect(
        addr,
        "GET",
        &format!("{TXS}/balance?month={MONTH}&year={YEAR}"),
        &token,
        None,
        200,
    );
    assert!(b["transaction_count"].as_u64().is_some(), "{b}");
    let rows = check_month(addr, &token, &acked, "while full");
    for k in &to_retry {
        assert!(
            !rows.contains_key(&k.label),
            "{:.20} was refused, yet it is stored",
            k.label
        );
    }
    assert_eq!(integrity_check(&db), "ok", "integrity while full");
    let actual = allocations_actual(addr, &token, YEAR, MONTH);
    assert_eq!(actual, adds_acked, "allocation total while full");
    println!(
        "while full: /api/v1/ready says {:?}",
        server.status("/api/v1/ready")
    );

    // A restart while the disk is still full (systemd restarting a crashed unit): the server
    // stops cleanly, comes up again, reads, and refuses writes as cleanly as before.
    let code = server.terminate(Duration::from_secs(20));
    assert_eq!(
        code,
        Some(0),
        "stop on a full disk; log:\n{}",
        server.log_text()
    );
    let full_stop_log = server.log_text();
    server = Server::start(&base.0, &vars, "serve-2");
    addr = server.addr;
    check_month(addr, &token, &acked, "restarted while full");
    let k = keyed(MAX_WRITES + 100);
    let r = post_keyed(addr, &token, &k.key, &k.body).reply("write after a restart, full");
    println!("restarted while full: a write got {}", r.status);
    if r.status == 201 {
        acked.push((k.label.clone(), r.json()["id"].as_str().expect("id").into()));
    } else {
        assert_clean_refusal(&r, "write after a restart, full", &server.log_text());
        to_retry.push(k);
    }
    assert_eq!(
        integrity_check(&db),
        "ok",
        "integrity after a restart, full"
    );

    // Free the space: writes succeed again without a restart.
    let pid = server.pid();
    std::fs::remove_file(&filler).expect("delete the filler");
    let freed = Instant::now();
    let mut recovered_after = None;
    for k in &to_retry {
        let mut answer = None;
        wait_until(RECOVERY_LIMIT, || {
            let r = post_keyed(addr, &token, &k.key, &k.body).reply("write after freeing");
            if r.status != 201 {
                assert_clean_refusal(&r, "write after freeing", &server.log_text());
                return false;
            }
            answer = Some(r);
            true
        });
        let r = answer.unwrap_or_else(|| {
            panic!(
                "still refused {RECOVERY_LIMIT:?} after the filler was deleted; log:\n{}",
                server.log_text()
            )
        });
        recovered_after.get_or_insert(freed.elapsed());
        acked.push((k.label.clone(), r.json()["id"].as_str().expect("id").into()));
    }
    for _ in 0..adds_refused {
        let r = call(addr, "POST", ACTUAL, &token, Some(&allocation(7)), &[])
            .reply("allocation add after freeing");
        assert_eq!(r.status, 200, "allocation add after freeing: {}", r.text());
        adds_acked += 7;
    }
    assert_eq!(server.pid(), pid);
    assert!(server.alive(), "the server died after the disk was freed");
    check_month(addr, &token, &acked, "after freeing");
    assert_eq!(
        allocations_actual(addr, &token, YEAR, MONTH),
        adds_acked,
        "allocation total after freeing"
    );
    assert_eq!(integrity_check(&db), "ok", "integrity after freeing");

    // A graceful stop folds the WAL in (the checkpoint works again), and a restart finds it all.
    let code = server.terminate(Duration::from_secs(20));
    assert_eq!(code, Some(0), "graceful stop; log:\n{}", server.log_text());
    let log = format!("{full_stop_log}{}", server.log_text());
    assert!(!log.contains("panicked"), "a thread panicked:\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("disk full")),
        "the refused writes left no trace in the server's log:\n{log}"
    );
    let wal = std::fs::metadata(fs.path("wc.db-wal")).map_or(0, |m| m.len());
    assert_eq!(
        wal, 0,
        "the WAL was not checkpointed at the stop; log:\n{log}"
    );
    assert_eq!(integrity_check(&db), "ok", "integrity after the stop");
    let server = Server::start(&base.0, &vars, "serve-3");
    let rows = check_month(server.addr, &token, &acked, "after a restart");
    assert_eq!(
        rows.len(),
        acked.len(),
        "rows after a restart: every acknowledged write once, nothing else"
    );
    let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    println!(
        "{} writes acknowledged in all; writes accepted again {:.2} s after the filler was \
         deleted; log: {} refused writes, {} failed checkpoints; done in {:.1} s",
        acked.len(),
        recovered_after.map_or(0.0, |d| d.as_secs_f64()),
        count("disk full"),
        count("WAL checkpoint failed"),
        started.elapsed().as_secs_f64()
    );
    let mut other: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .filter(|l| !l.contains("disk full") && !l.contains("WAL checkpoint failed"))
        .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest))
        .collect();
    other.dedup();
    for line in other {
        println!("  other log line: {line}");
    }
}

/// The checkpoint thread restarts the WAL (a checkpoint on the writer, after which the next
/// commit writes from the start of the file again) once it holds 1024 frames, 4 MiB of 4 KiB
/// pages; the file keeps its largest size for reuse. Without that, every commit appends at
/// least one page and the file only grows (300 MB of WAL for 7 MB of data, once).
const WAL_BOUND_BYTES: u64 = 32 * 1024 * 1024;
/// Writes enough that a WAL that never restarts would pass the bound twice over (each commit
/// appends at least one 4 KiB page).
const WRITES_TO_TELL: usize = 2 * (WAL_BOUND_BYTES as usize) / 4096;
const WAL_TIME_LIMIT: Duration = Duration::from_secs(90);

#[test]
fn the_wal_stays_bounded_under_a_steady_stream_of_writes() {
    wal_growth_run(&[], WRITES_TO_TELL, WAL_TIME_LIMIT);
}

/// Each checkpoint ends in fsyncs. On a slow disk a checkpoint thread that keeps copying
/// while commits land never restarts the WAL: four more catch-up passes took 0.8 s with every
/// fsync delayed 200 ms, and the WAL passed 32 MiB in 5 s (CI failed on it). Here strace
/// delays every fsync and fdatasync of the server by 200 ms.
#[test]
fn the_wal_stays_bounded_when_fsync_is_slow() {
    let test = "the_wal_stays_bounded_when_fsync_is_slow";
    let Some(found) = common::programs_or_skip(
        test,
        &["strace", "setpriv"],
        "apt-get install strace util-linux",
    ) else {
        return;
    };
    let (strace, setpriv) = (found[0].to_string_lossy(), found[1].to_string_lossy());
    // `-o /dev/null`: the trace itself is not wanted. setpriv's parent-death signal takes the
    // server down when the test kills strace (strace alone would detach and leave it running).
    let wrapper = [
        &*strace,
        "-f",
        "--seccomp-bpf",
        "-e",
        "trace=fsync,fdatasync",
        "-e",
        "inject=fsync,fdatasync:delay_exit=200000",
        "-o",
        "/dev/null",
        &*setpriv,
        "--pdeathsig",
        "KILL",
    ];
    wal_growth_run(&wrapper, SLOW_WRITES_TO_TELL, SLOW_TIME_LIMIT);
}

/// Each of these writes appends 4-5 pages to the WAL (measured: ~8,500 pages for ~1,800 writes
/// with one restart): 4,096 of them would pass the bound without restarts.
const SLOW_WRITES_TO_TELL: usize = 4096;
const SLOW_TIME_LIMIT: Duration = Duration::from_secs(60);

/// Four clients POST transactions until `enough` were written (or `limit` passed, which
/// fails), while the WAL file's size is watched against [`WAL_BOUND_BYTES`].
fn wal_growth_run(wrapper: &[&str], enough: usize, limit: Duration) {
    let started = Instant::now();
    let dir = TempDir::new("walgrowth");
    let db = dir.path("wc.db");
    let url = db.to_str().expect("utf-8 temp path").to_string();
    let server = Server::start_under(wrapper, &dir.0, &server_vars(&url, "NORMAL"), "serve");
    let token = register(server.addr, "wal-growth@example.com");
    let wal = dir.path("wc.db-wal");
    let wal_size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    let stop = AtomicBool::new(false);
    let written = std::sync::atomic::AtomicUsize::new(0);
    let mut largest = 0u64;
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let (stop, written, token, addr) = (&stop, &written, &token, server.addr);
                s.spawn(move || {
                    let mut statuses = Vec::new();
                    for n in 0u64.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let body = json!({"type": "expense", "category": "wal", "amount": "1.25",
                                          "label": format!("wal t{t} n{n} {}", "w".repeat(180)),
                                          "transaction_date": "2031-07-15"});
                        let r = call(addr, "POST", TXS, token, Some(&body), &[])
                            .reply("a write under steady load");
                        statuses.push(r.status);
                        written.fetch_add(1, Ordering::Relaxed);
                    }
                    statuses
                })
            })
            .collect();
        // Watch the WAL file until enough was written to tell, or it passed the bound.
        while started.elapsed() < limit
            && largest <= WAL_BOUND_BYTES
            && written.load(Ordering::Relaxed) < enough
        {
            std::thread::sleep(Duration::from_millis(50));
            largest = largest.max(wal_size());
        }
        stop.store(true, Ordering::Relaxed);
        writers
            .into_iter()
            .flat_map(|w| w.join().expect("writer thread"))
            .collect()
    });
    println!(
        "{} writes in {:.1} s; the WAL file reached {largest} bytes (bound {WAL_BOUND_BYTES})",
        statuses.len(),
        started.elapsed().as_secs_f64(),
    );
    assert!(
        largest <= WAL_BOUND_BYTES,
        "the WAL grew to {largest} bytes under steady writes\nlog:\n{}",
        server.log_text()
    );
    assert!(
        statuses.len() >= enough,
        "only {} writes in {limit:?}: too few to tell a bounded WAL from a growing one",
        statuses.len()
    );
    let refused = statuses.iter().filter(|s| **s != 201).count();
    // The checkpoint on the writer holds writers off for a moment; none may time out behind it.
    assert_eq!(refused, 0, "writes refused under steady load: {statuses:?}");
    check_invariant(server.addr, &token, 2031, 7);
    assert_eq!(integrity_check(&db), "ok");
}
