//! The reverse proxy for real: nginx from Debian with the site install.sh installs, over TLS,
//! in front of the real server (in this process, TRUSTED_PROXIES=127.0.0.1 as on a VM).
//!
//! Needs the Debian packages nginx and openssl; without them every test here fails saying so,
//! unless WEALTHCOACH_SKIP_PROXY_TESTS=1.

mod common;
mod fake_llm;
mod proxy_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use proxy_support::*;
use serde_json::{Value, json};
use tungstenite::Message;

/// What the VM's env file sets that matters here: the proxy on this machine is trusted.
const BEHIND_PROXY: (&str, &str) = ("TRUSTED_PROXIES", "127.0.0.1");

fn register(agent: &ureq::Agent, nginx: &Nginx, email: &str) -> String {
    let mut r = agent
        .post(nginx.url("/api/v1/auth/register"))
        .send_json(json!({"email": email, "password": "Secret#123", "full_name": "Proxy User"}))
        .expect("register through the proxy");
    let body: Value = r.body_mut().read_json().expect("json");
    assert_eq!(r.status(), 201, "{body}");
    body["access_token"].as_str().expect("token").to_string()
}

fn next_json<S: Read + Write>(ws: &mut tungstenite::WebSocket<S>) -> Value {
    loop {
        match ws.read().expect("a frame") {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("json frame"),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

fn sse_events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("event"))
        .collect()
}

#[test]
fn api_websocket_and_sse_work_through_nginx_over_tls() {
    if !proxy_tools_present() {
        return;
    }
    // Production settings, as on a VM (the SMS webhook is never called: email sign-up).
    let app = spawn_app_with(&[
        BEHIND_PROXY,
        ("ENVIRONMENT", "production"),
        ("SMS_PROVIDER", "webhook"),
        ("SMS_WEBHOOK_URL", "http://127.0.0.1:9/sms"),
    ]);
    let nginx = Nginx::start(&app);
    let agent = nginx.agent();

    let mut health = agent
        .get(nginx.url("/api/v1/health"))
        .call()
        .expect("health");
    assert_eq!(health.status(), 200, "{}", nginx.logs());
    let hsts: Vec<_> = health
        .headers()
        .get_all("strict-transport-security")
        .iter()
        .collect();
    assert_eq!(hsts.len(), 1, "exactly one HSTS header: {hsts:?}");
    assert!(health.headers().get("x-request-id").is_some());
    let body: Value = health.body_mut().read_json().expect("json");
    assert_eq!(body["status"], "healthy");

    // Plain HTTP answers only with the way to HTTPS.
    let plain = request(nginx.http, "GET", "/api/v1/health?x=1", &[], None);
    assert_eq!(plain.status, 301);
    assert_eq!(
        plain.header("location"),
        Some("https://localhost/api/v1/health?x=1")
    );

    let token = register(&agent, &nginx, "proxy@example.com");
    let mut me = agent
        .get(nginx.url("/api/v1/users/me"))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .expect("me");
    assert_eq!(me.status(), 200);
    let me: Value = me.body_mut().read_json().expect("json");
    assert_eq!(me["email"], "proxy@example.com");

    // wss://…/ws/chat: without an OpenAI key the coach says so, then answers from the numbers.
    let stream = nginx.tls_stream();
    let url = format!("wss://{}/ws/chat?token={token}", nginx.https);
    let (mut ws, resp) = tungstenite::client::client(url, stream).expect("WebSocket upgrade");
    assert_eq!(resp.status().as_u16(), 101);
    let hello = next_json(&mut ws);
    assert_eq!(hello["type"], "connected", "{hello}");
    ws.send(Message::text(
        json!({"type": "message", "content": "How am I doing?"}).to_string(),
    ))
    .expect("send");
    let err = next_json(&mut ws);
    assert_eq!(err["type"], "error", "{err}");
    assert_eq!(err["code"], "not_configured", "{err}");
    let answer = next_json(&mut ws);
    assert_eq!(answer["type"], "response", "{answer}");
    assert_eq!(answer["fallback"], true, "{answer}");
    assert_eq!(answer["done"], true, "{answer}");
    ws.close(None).expect("close");

    // Server-sent events arrive whole and end with {"type":"done"}.
    let mut sse = agent
        .post(nginx.url("/api/v1/chat/message/stream"))
        .header("Authorization", &format!("Bearer {token}"))
        .send_json(json!({"message": "hi", "session_id": null}))
        .expect("stream");
    assert_eq!(sse.status(), 200);
    assert!(
        sse.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream")),
        "{:?}",
        sse.headers()
    );
    let events = sse_events(&sse.body_mut().read_to_string().expect("body"));
    assert!(events.len() >= 3, "{events:?}");
    assert_eq!(events[0]["type"], "session_id");
    assert_eq!(
        events.last().expect("an event")["type"],
        "done",
        "{events:?}"
    );
}

#[test]
fn sse_events_pass_nginx_one_by_one() {
    if !proxy_tools_present() {
        return;
    }
    let llm = fake_llm::FakeLlm::start();
    llm.set_pieces(
        ["one ", "two ", "three ", "four"]
            .map(String::from)
            .to_vec(),
    );
    llm.set_interval(Duration::from_millis(400));
    let base = llm.base_url();
    let app = spawn_app_with(&[
        BEHIND_PROXY,
        ("OPENAI_API_KEY", "sk-test"),
        ("OPENAI_BASE_URL", &base),
    ]);
    let nginx = Nginx::start(&app);
    let agent = nginx.agent();
    let token = register(&agent, &nginx, "sse@example.com");

    let mut resp = agent
        .post(nginx.url("/api/v1/chat/message/stream"))
        .header("Authorization", &format!("Bearer {token}"))
        .send_json(json!({"message": "stream please"}))
        .expect("stream");
    assert_eq!(resp.status(), 200);
    let started = Instant::now();
    let mut arrivals: Vec<(Duration, Value)> = Vec::new();
    for line in BufReader::new(resp.body_mut().as_reader()).lines() {
        let line = line.expect("a line");
        if let Some(data) = line.strip_prefix("data: ") {
            arrivals.push((
                started.elapsed(),
                serde_json::from_str(data).expect("event"),
            ));
        }
    }
    let times: Vec<String> = arrivals
        .iter()
        .map(|(t, e)| format!("{}@{}ms", e["type"], t.as_millis()))
        .collect();
    println!("SSE arrivals through nginx: {times:?}");
    let tokens: Vec<Duration> = arrivals
        .iter()
        .filter(|(_, e)| e["type"] == "token")
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(tokens.len(), 4, "{times:?}");
    assert_eq!(arrivals.last().expect("events").1["type"], "done");
    // Buffered, all four would land together at the end; streamed, 400 ms apart.
    assert!(
        tokens[3] - tokens[0] >= Duration::from_millis(900),
        "tokens arrived together, so something buffered: {times:?}"
    );
}

#[test]
fn nginx_refuses_a_body_over_one_mib_with_its_own_413() {
    if !proxy_tools_present() {
        return;
    }
    let app = spawn_app_with(&[BEHIND_PROXY]);
    let nginx = Nginx::start(&app);
    let body = vec![b'a'; 2 * 1024 * 1024];
    let mut s = nginx.tls_stream();
    let head = format!(
        "POST /api/v1/auth/register HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("head");
    write_until_refused(&mut s, &body);
    let (status, head) = read_head(&mut s);
    assert_eq!(status, 413, "{head}");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let page = format!("{head}{}", String::from_utf8_lossy(&rest));
    assert!(
        page.contains("text/html") && page.contains("<title>413 Request Entity Too Large"),
        "nginx's page, not the server's JSON: {page}"
    );
    assert!(
        head.contains("Strict-Transport-Security"),
        "HSTS on nginx's own pages too: {head}"
    );
}

#[test]
fn the_server_believes_the_address_nginx_saw_not_the_one_a_client_claims() {
    if !proxy_tools_present() {
        return;
    }
    let app = spawn_app_with(&[BEHIND_PROXY]);
    let nginx = Nginx::start(&app);

    // /api/v1/metrics answers loopback only. Through nginx the client (127.0.0.1) claims to
    // be 6.6.6.6; nginx replaces the header with the address it saw, so the server lets it in.
    let r = nginx
        .agent()
        .get(nginx.url("/api/v1/metrics"))
        .header("X-Forwarded-For", "6.6.6.6")
        .call()
        .expect("metrics");
    assert_eq!(
        r.status(),
        200,
        "nginx passed the client's X-Forwarded-For on"
    );

    // Straight to the server from 127.0.0.1, a trusted proxy, the same header is believed:
    // the client is 6.6.6.6, not loopback, so 403. This is what nginx must not let through.
    let direct = request(
        app.http,
        "GET",
        "/api/v1/metrics",
        &[("X-Forwarded-For", "6.6.6.6")],
        None,
    );
    assert_eq!(direct.status, 403, "{}", direct.text());
}

#[test]
fn nginx_absorbs_hostile_clients_and_health_stays_fast() {
    if !proxy_tools_present() {
        return;
    }
    let app = spawn_app_with(&[BEHIND_PROXY]);
    let nginx = Nginx::start(&app);
    let agent = nginx.agent();
    let threads_before = thread_count();
    let started = Instant::now();

    // 500 connections that never start TLS, 250 on each listener.
    let mut idle: Vec<TcpStream> = (0..500)
        .map(|i| {
            let addr = if i % 2 == 0 { nginx.https } else { nginx.http };
            TcpStream::connect(addr).expect("idle connect")
        })
        .collect();
    // 40 TLS clients that made one request and now sit on their kept-alive connection.
    let mut kept_alive = Vec::new();
    for _ in 0..40 {
        let mut s = nginx.tls_stream();
        s.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("write");
        assert_eq!(read_head(&mut s).0, 200);
        kept_alive.push(s);
    }
    // 5 slowloris senders over TLS: one header byte every 300 ms, for up to 15 s.
    let slowloris: Vec<_> = (0..5)
        .map(|i| {
            let mut s = nginx.tls_stream();
            std::thread::spawn(move || {
                let t0 = Instant::now();
                if s.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n")
                    .is_err()
                {
                    return t0.elapsed();
                }
                let header = format!("X-Slow-{i}: {}\r\n", "z".repeat(200));
                for b in header.bytes().cycle() {
                    if t0.elapsed() > Duration::from_secs(15) || s.write_all(&[b]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
                t0.elapsed()
            })
        })
        .collect();

    // A body of a terabyte, declared and never sent: refused at once, by nginx.
    let t = Instant::now();
    let mut huge = nginx.tls_stream();
    huge.write_all(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\n\
          Content-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n",
    )
    .expect("write");
    let (status, head) = read_head(&mut huge);
    assert_eq!(status, 413, "{head}");
    println!("Content-Length 10^12: 413 in {:?}", t.elapsed());

    // A 1 MiB header line: nginx stops reading at 16 KiB and answers 400 itself.
    let mut big = nginx.tls_stream();
    let mut req = b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\nX-Big: ".to_vec();
    req.extend(std::iter::repeat_n(b'h', 1024 * 1024));
    req.extend_from_slice(b"\r\n\r\n");
    let sent = write_until_refused(&mut big, &req);
    let (status, head) = read_head(&mut big);
    assert_eq!(status, 400, "{head}");
    println!("1 MiB header: 400 after {sent} bytes were accepted");

    // A normal client meanwhile: a fresh TLS connection for every request.
    let mut times = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        let r = nginx.agent().get(nginx.url("/api/v1/health")).call();
        let r = r.expect("health under attack");
        assert_eq!(r.status(), 200);
        times.push(t.elapsed());
    }
    let mut sorted = times.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    let shown: Vec<String> = times
        .iter()
        .map(|t| format!("{:.1}", t.as_secs_f64() * 1000.0))
        .collect();
    println!(
        "/api/v1/health through nginx under attack, ms: {shown:?} (median {:.1})",
        median.as_secs_f64() * 1000.0
    );
    assert!(
        median < Duration::from_millis(100),
        "median {median:?}: {shown:?}"
    );
    let threads_during = thread_count();
    println!(
        "threads in the test process (server + 5 slowloris): {threads_before} before, \
         {threads_during} under attack"
    );
    // Straight at the server, 500 idle connections cost about 450 threads
    // (tests/hostile_http.rs); behind nginx only its few upstream connections do.
    assert!(
        threads_during < threads_before + 40,
        "{threads_before} -> {threads_during}: the attack reached the server"
    );

    // nginx's client_header_timeout (10 s) ends the slow heads and the silent connections.
    let lasted: Vec<Duration> = slowloris
        .into_iter()
        .map(|h| h.join().expect("slowloris thread"))
        .collect();
    println!("slowloris senders cut off after {lasted:?}");
    for l in &lasted {
        assert!(
            (Duration::from_secs(8)..Duration::from_secs(14)).contains(l),
            "a slowloris sender was not cut off by client_header_timeout (10 s): {lasted:?}"
        );
    }
    let wait = Duration::from_secs(12).saturating_sub(started.elapsed());
    std::thread::sleep(wait);
    let mut closed = 0;
    for s in idle.iter_mut().take(20) {
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut b = [0u8; 64];
        match s.read(&mut b) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            _ => {}
        }
    }
    assert_eq!(
        closed, 20,
        "idle connections outlived client_header_timeout"
    );
    drop(kept_alive);

    let mut after = agent
        .get(nginx.url("/api/v1/health"))
        .call()
        .expect("health after");
    assert_eq!(after.status(), 200);
    let body: Value = after.body_mut().read_json().expect("json");
    assert_eq!(body["status"], "healthy");
}
